from django.core.management.base import BaseCommand

from monitoring.services.deployments import deployments_sync


class Command(BaseCommand):
    help = (
        "Create the default Celery beat schedules, and each served model's folders and schedules "
        "(keeps intervals edited in the admin)."
    )

    def handle(self, *args, **options):
        for line in deployments_sync():
            self.stdout.write(line)

from django.core.management.base import BaseCommand

from monitoring.services.schedules import periodic_tasks_setup


class Command(BaseCommand):
    help = "Create the default Celery beat schedules (keeps intervals edited in the admin)."

    def handle(self, *args, **options):
        for line in periodic_tasks_setup():
            self.stdout.write(line)

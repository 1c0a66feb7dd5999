from django.core.management.base import BaseCommand

from predictions.services.scheduled import scheduled_scoring_run


class Command(BaseCommand):
    help = "Run one pass of the scheduled prediction job now."

    def handle(self, *args, **options):
        run = scheduled_scoring_run()
        self.stdout.write(
            f"run #{run.pk} {run.status}: {run.files_scored} file(s), {run.rows_scored} row(s) scored "
            f"with {run.model_name} v{run.model_version}" + (f"\n{run.error}" if run.error else "")
        )

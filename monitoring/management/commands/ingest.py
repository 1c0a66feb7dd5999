from django.core.management.base import BaseCommand

from monitoring.services.ingestion import ingestion_run_execute


class Command(BaseCommand):
    help = "Run one ingestion pass now: validate new files in raw/ and split them into good/ and bad/."

    def add_arguments(self, parser):
        parser.add_argument("--min-age", type=float, default=None, help="Seconds a file must be unchanged")

    def handle(self, *args, **options):
        run = ingestion_run_execute(min_age_seconds=options["min_age"])
        for ingested in run.files.order_by("started_at"):
            self.stdout.write(
                f"{ingested.original_name}: {ingested.status}, {ingested.rows_in} in = {ingested.rows_good} good"
                f" + {ingested.rows_bad} bad" + (f" ({ingested.reason})" if ingested.reason else "")
            )
        self.stdout.write(f"run #{run.pk}: {run.files_processed} of {run.files_seen} file(s) processed")
        if run.error:
            self.stderr.write(run.error)

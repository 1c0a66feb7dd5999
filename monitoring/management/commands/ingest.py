from django.core.management.base import BaseCommand, CommandError

from models_registry.selectors import deployment_list
from monitoring.services.ingestion import ingestion_run_execute


class Command(BaseCommand):
    help = (
        "Run one ingestion pass now: validate new files in raw/<model>/ and split them into good/ and bad/, "
        "for one model or every served model."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", help="registered model name (default: every model with a production version)")
        parser.add_argument("--min-age", type=float, default=None, help="Seconds a file must be unchanged")

    def handle(self, *args, **options):
        names = [options["model"]] if options["model"] else [d.name for d in deployment_list()]
        if not names:
            raise CommandError("No model has a production version: no raw folder is watched")
        for name in names:
            run = ingestion_run_execute(model_name=name, min_age_seconds=options["min_age"])
            for ingested in run.files.order_by("started_at"):
                self.stdout.write(
                    f"{name}/{ingested.original_name}: {ingested.status}, {ingested.rows_in} in = "
                    f"{ingested.rows_good} good + {ingested.rows_bad} bad"
                    + (f" ({ingested.reason})" if ingested.reason else "")
                )
            self.stdout.write(f"{name}: run #{run.pk}: {run.files_processed} of {run.files_seen} file(s) processed")
            if run.error:
                self.stderr.write(run.error)

from django.core.management.base import BaseCommand, CommandError

from models_registry.selectors import deployment_list
from predictions.services.scheduled import scheduled_scoring_run


class Command(BaseCommand):
    help = "Run one pass of the scheduled prediction job now, for one model or every served model."

    def add_arguments(self, parser):
        parser.add_argument("--model", help="registered model name (default: every model with a production version)")

    def handle(self, *args, **options):
        names = [options["model"]] if options["model"] else [d.name for d in deployment_list()]
        if not names:
            raise CommandError("No model has a production version: nothing to score with")
        for name in names:
            run = scheduled_scoring_run(model_name=name)
            self.stdout.write(
                f"{name}: run #{run.pk} {run.status}: {run.files_scored} file(s), {run.rows_scored} row(s) scored"
                + (f" with v{run.model_version}" if run.model_version else "")
                + (f"\n{run.error}" if run.error else "")
            )

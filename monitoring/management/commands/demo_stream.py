from django.core.management.base import BaseCommand, CommandError

from monitoring.services.demo_stream import (
    DemoStreamConfig,
    DemoStreamError,
    demo_dataset_for_served_model,
    demo_stream_run,
)
from monitoring.services.ingestion import data_folders


class Command(BaseCommand):
    help = "Drop a generated demo file into raw/<model>/ every --every seconds, with faults and optional drift."

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="the served model whose raw folder gets the files")
        parser.add_argument("--every", type=float, default=60.0, help="Seconds between files (default 60)")
        parser.add_argument("--rows", type=int, default=500)
        parser.add_argument("--fault-share", type=float, default=0.05, help="Share of rows with an injected fault")
        parser.add_argument("--broken-every", type=int, default=5, help="Every n-th file is broken whole (0: never)")
        parser.add_argument("--drift", type=float, default=0.8, help="Strength of the drift, 0 to 1")
        parser.add_argument("--drift-after-minutes", type=float, default=10.0, help="Negative: never drift")
        parser.add_argument("--dataset", help="churn or housing (default: the one the model was trained on)")
        parser.add_argument("--once", action="store_true", help="Write one file and stop")
        parser.add_argument("--files", type=int, help="Stop after this many files")
        parser.add_argument(
            "--labels",
            action="store_true",
            help="Files carry the target column (labels arrive with the data): retraining learns from them",
        )

    def handle(self, *args, **options):
        try:
            config = DemoStreamConfig(
                dataset=options["dataset"] or demo_dataset_for_served_model(model_name=options["model"]),
                rows=options["rows"],
                fault_share=options["fault_share"],
                broken_every=options["broken_every"],
                drift=options["drift"],
                drift_after_minutes=None if options["drift_after_minutes"] < 0 else options["drift_after_minutes"],
                with_target=options["labels"],
            )
        except DemoStreamError as exc:
            raise CommandError(str(exc)) from exc

        def report(demo_file):
            what = demo_file.incident or f"{demo_file.rows} rows, faults {demo_file.faults or 'none'}"
            self.stdout.write(f"{demo_file.path.name}: {what}, drift {demo_file.drift}")

        demo_stream_run(
            config=config,
            every_seconds=options["every"],
            max_files=1 if options["once"] else options["files"],
            raw_dir=data_folders(options["model"])["raw"],
            on_file=report,
        )

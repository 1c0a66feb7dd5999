from django.core.management.base import BaseCommand, CommandError

from models_registry import services
from models_registry.reports import data_report_lines, selection_lines
from models_registry.training import SchemaChangeNotConfirmed, TrainingInputError, model_train


class Command(BaseCommand):
    help = "Train a model on a CSV, log it to MLflow and register it as a new version."

    def add_arguments(self, parser):
        parser.add_argument("--csv", required=True, help="Path of the training CSV (header row required)")
        parser.add_argument("--target", required=True, help="Column to predict")
        parser.add_argument("--name", required=True, help="Registered model name (a new one, or an existing model's)")
        parser.add_argument("--task", choices=["classification", "regression"], help="Default: inferred")
        parser.add_argument("--promote", action="store_true", help="Give the new version the production alias")
        parser.add_argument(
            "--allow-schema-change",
            action="store_true",
            help="Register (and with --promote, promote) even if the task, target or features differ from production",
        )

    def handle(self, *args, **options):
        def progress(percent, stage):
            if options["verbosity"] > 1:
                self.stdout.write(f"  {percent:3d}% {stage}")

        try:
            result = model_train(
                csv=options["csv"],
                target=options["target"],
                name=options["name"],
                task=options["task"],
                actor_label="manage.py train",
                progress=progress,
                allow_schema_change=options["allow_schema_change"],
            )
        except SchemaChangeNotConfirmed as exc:
            raise CommandError(f"{exc} (--allow-schema-change registers it anyway)") from exc
        except TrainingInputError as exc:
            raise CommandError(str(exc)) from exc
        mv = result.model_version
        verb = "Reused" if result.reused_existing else "Registered"
        self.stdout.write(self.style.SUCCESS(f"{verb} {mv.name} version {mv.version} ({mv.task}, run {mv.run_id})"))
        params = mv.params or {}
        for line in data_report_lines(params.get("data_report") or {}, target=mv.target):
            self.stdout.write(f"  data: {line}")
        selection = params.get("selection") or {}
        if selection:
            self.stdout.write(
                f"  model selection ({selection['folds']}-fold cross-validation on {selection['rows']} training rows):"
            )
            for line in selection_lines(selection):
                self.stdout.write(f"    {line}")
        self.stdout.write("  metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in mv.metrics.items()))
        profile = mv.training_profile
        features = ", ".join(f"{spec.name} ({spec.kind})" for spec in profile.features)
        self.stdout.write(f"  profile: {len(profile.features)} features: {features}")
        self.stdout.write(f"  training data sha256: {mv.training_data_sha256}")
        if options["promote"]:
            try:
                services.model_version_promote(
                    name=mv.name,
                    version=mv.version,
                    actor_label="manage.py train --promote",
                    reason="promoted from the command line",
                    confirm_schema_change=options["allow_schema_change"],
                )
            except services.PromotionError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(self.style.SUCCESS(f"  {mv.name} version {mv.version} is now in production"))

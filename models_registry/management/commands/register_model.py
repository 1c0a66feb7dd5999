from django.core.management.base import BaseCommand, CommandError

from models_registry import services
from models_registry.importing import ModelImportError, model_import


class Command(BaseCommand):
    help = (
        "Register an existing MLflow model (runs:/ or models:/ URI, or a model directory) with a reference CSV: "
        "mlapp profiles the reference, records the model's file hashes, smoke-tests it, and serves and monitors it "
        "like one it trained. Only scikit-learn models saved with skops (trusted types) are accepted."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="Registered model name (a new one, or an existing model's)")
        parser.add_argument(
            "--model", required=True, help="runs:/<run>/<path>, models:/<name>/<version>, or a directory"
        )
        parser.add_argument("--reference", required=True, help="CSV of rows like those the model will see")
        parser.add_argument("--target", required=True, help="What the model predicts (a column of the CSV, if any)")
        parser.add_argument("--task", choices=["classification", "regression"], help="Default: from the model")
        parser.add_argument("--promote", action="store_true", help="Give the new version the production alias")
        parser.add_argument(
            "--allow-schema-change",
            action="store_true",
            help="Register (and with --promote, promote) even if the task, target or features differ from production",
        )

    def handle(self, *args, **options):
        try:
            result = model_import(
                source=options["model"],
                reference_csv=options["reference"],
                name=options["name"],
                target=options["target"],
                task=options["task"],
                actor_label="manage.py register_model",
                allow_schema_change=options["allow_schema_change"],
            )
        except ModelImportError as exc:
            raise CommandError(str(exc)) from exc
        mv = result.model_version
        verb = "Already registered as" if result.reused_existing else "Registered"
        self.stdout.write(self.style.SUCCESS(f"{verb} {mv.name} version {mv.version} ({mv.task}, run {mv.run_id})"))
        profile = mv.training_profile
        features = ", ".join(f"{spec.name} ({spec.kind})" for spec in profile.features)
        self.stdout.write(f"  profile from {mv.n_train_rows} reference rows: {features}")
        self.stdout.write(f"  artifact sha256: {mv.artifact_sha256}")
        if mv.metrics:
            self.stdout.write("  metrics on the reference: " + ", ".join(f"{k}={v:.4f}" for k, v in mv.metrics.items()))
        if options["promote"]:
            try:
                services.model_version_promote(
                    name=mv.name,
                    version=mv.version,
                    actor_label="manage.py register_model --promote",
                    reason=f"registered from {options['model']}",
                    confirm_schema_change=options["allow_schema_change"],
                )
            except services.PromotionError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(self.style.SUCCESS(f"  {mv.name} version {mv.version} is now in production"))

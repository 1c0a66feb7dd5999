import shlex

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Print where the platform keeps things (--shell: as shell assignments for scripts/run)."

    def add_arguments(self, parser):
        parser.add_argument("--shell", action="store_true")

    def handle(self, *args, **options):
        values = {
            "MLFLOW_UI_BACKEND_STORE": settings.MLFLOW_TRACKING_URI,
            "MLFLOW_UI_ARTIFACT_ROOT": settings.MLFLOW_ARTIFACT_ROOT,
            "MLAPP_DATA_DIR": str(settings.MLAPP_DATA_DIR),
            "DATABASE_ENGINE": settings.DATABASES["default"]["ENGINE"],
            "CELERY_BROKER": settings.CELERY_BROKER_URL.split("@")[-1],
        }
        for key, value in values.items():
            self.stdout.write(f"{key}={shlex.quote(value)}" if options["shell"] else f"{key}: {value}")

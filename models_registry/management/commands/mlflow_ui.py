import os
import shutil
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from models_registry.mlflow_ui import admin_password_path, mlflow_ui_command


class Command(BaseCommand):
    help = "Run the MLflow UI on mlapp's store: 127.0.0.1 only, behind MLflow's basic-auth app (docs/security.md)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=settings.MLFLOW_PORT)

    def handle(self, *args, **options):
        argv, environment = mlflow_ui_command(port=options["port"])
        # The mlflow script of this virtualenv, and uvicorn beside it (mlflow server runs it from PATH).
        bin_dir = Path(sys.executable).parent
        executable = shutil.which("mlflow", path=str(bin_dir)) or shutil.which("mlflow")
        env = {**os.environ, **environment, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.stdout.write(
            f"MLflow UI on http://127.0.0.1:{options['port']}/ (basic auth: user admin, "
            f"password in {admin_password_path()})"
        )
        self.stdout.flush()
        os.execve(executable, argv, env)

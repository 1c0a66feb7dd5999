"""Model directories that run code when loaded: what a hostile version in the MLflow store looks like.

Unpickling `Payload` writes `marker`; a test proves the payload is real (it does run when
loaded the unsafe way) and that mlapp never runs it.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
import yaml

from models_registry import mlflow_access


class Payload:
    """Unpickling this calls Path(marker).write_text(...): code chosen by whoever wrote the file."""

    def __init__(self, marker: Path):
        self.marker = Path(marker)

    def __reduce__(self):
        return (Path.write_text, (self.marker, "the payload ran"))


def payload_model_dir(directory: Path, marker: Path, *, serialization_format: str = "cloudpickle") -> Path:
    """An MLflow scikit-learn model directory whose model file is a pickle that writes `marker` when loaded."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.pkl").write_bytes(pickle.dumps(Payload(marker)))
    mlmodel = {
        "artifact_path": "model",
        "flavors": {
            "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl", "env": {}},
            "sklearn": {
                "pickled_model": "model.pkl",
                "serialization_format": serialization_format,
                "sklearn_version": "1.9.1",
                "code": None,
            },
        },
        "mlflow_version": mlflow.__version__,
    }
    (directory / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    return directory


def payload_version_register(name: str, directory: Path) -> int:
    """Register `directory` as a new version of `name` straight in MLflow (as any client of the store can)."""
    mlflow_access.tracking_configure()
    client = mlflow_access.client()
    with mlflow.start_run(experiment_id=mlflow_access.experiment_id_get(), run_name="not-mlapp") as run:
        mlflow.log_artifacts(str(directory), artifact_path="model")
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name)
    version = client.create_model_version(name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    return int(version.version)


def version_files_dir(name: str, version: int) -> Path:
    """Where a version's model files are on disk (a local artifact root)."""
    uri = mlflow_access.client().get_model_version_download_uri(name, str(version))
    return Path(unquote(urlparse(uri).path))


def tamper_with_payload(directory: Path, marker: Path) -> None:
    """Rewrite a trusted version's files on disk so that loading it the MLflow way would run the payload."""
    payload_model_dir(directory, marker)

"""The one place that talks to MLflow: tracking URI, experiment, client.

Nothing here runs at import time; every caller goes through `client()` or
`tracking_configure()` so the URI comes from settings (and tests can point it
at their own store).
"""

import logging
from functools import cache
from importlib import metadata

import mlflow
import mlflow.store.db.utils
from django.conf import settings
from mlflow.tracking import MlflowClient

PRODUCTION = "production"
CHALLENGER = "challenger"

# MLflow saves scikit-learn models with skops and refuses types it does not
# trust. These are the exact types our pipelines need (see NOTES.md), for every
# candidate the trainer can choose (selection.CANDIDATES; tests/models_registry/
# test_selection.py saves and loads each one with exactly this list).
SKOPS_TRUSTED_TYPES = [
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.tree._tree.Tree",  # the random forest's trees
    "numpy.dtype",
    "models_registry.dates.DateParts",  # date columns into their parts (ours: plain attributes, no code)
]


def serving_requirements() -> list[str]:
    """Pinned requirements of a logged model: what this process trained it with."""
    return [
        f"{package}=={metadata.version(package)}" for package in ("mlflow", "scikit-learn", "pandas", "numpy", "skops")
    ]


# MLflow retries creating a SQL engine 10 times with exponential backoff (~100 s)
# before it reports an unreachable database; the platform should know in a second.
REGISTRY_CONNECT_ATTEMPTS = 3


class _ServingExampleCheckFilter(logging.Filter):
    """Drops MLflow's "Failed to validate serving input example" warning, and only that one.

    `log_model` loads the model it just wrote to try its serving example; with pickle loading off
    (`MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false`, models_registry/trust.py) that load is refused, so
    every training printed a warning that deserializing is disallowed and the example may be invalid.
    The example is fine and still logged; mlapp smoke-tests every version it registers or promotes
    by loading it through trust.py and scoring its reference rows.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to validate serving input example")


_SERVING_EXAMPLE_FILTER = _ServingExampleCheckFilter()


def tracking_configure() -> None:
    """Point the mlflow module at our store (idempotent, cheap)."""
    logging.getLogger("mlflow.models.model").addFilter(_SERVING_EXAMPLE_FILTER)  # once: filters are a set
    mlflow.store.db.utils.MAX_RETRY_COUNT = REGISTRY_CONNECT_ATTEMPTS
    if mlflow.get_tracking_uri() != settings.MLFLOW_TRACKING_URI:
        mlflow.set_tracking_uri(settings.MLFLOW_TRACKING_URI)
        mlflow.set_registry_uri(settings.MLFLOW_TRACKING_URI)


def client() -> MlflowClient:
    tracking_configure()  # also caps the connect retries before the client builds its store
    return MlflowClient(tracking_uri=settings.MLFLOW_TRACKING_URI, registry_uri=settings.MLFLOW_TRACKING_URI)


def experiment_id_get() -> str:
    """The experiment our runs go to, created with our artifact root the first time."""
    return _experiment_id(settings.MLFLOW_TRACKING_URI, settings.MLFLOW_EXPERIMENT_NAME)


@cache
def _experiment_id(tracking_uri: str, experiment_name: str) -> str:
    mlflow_client = client()
    experiment = mlflow_client.get_experiment_by_name(experiment_name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return mlflow_client.create_experiment(experiment_name, artifact_location=settings.MLFLOW_ARTIFACT_ROOT)
    except mlflow.exceptions.MlflowException:
        # Another process created it between our read and our write.
        return mlflow_client.get_experiment_by_name(experiment_name).experiment_id


def run_url(run_id: str, experiment_id: str | None = None) -> str:
    base = settings.MLFLOW_UI_URL.rstrip("/")
    if experiment_id:
        return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"{base}/#/runs/{run_id}"


def model_url(name: str, version: int | None = None) -> str:
    base = settings.MLFLOW_UI_URL.rstrip("/")
    if version is None:
        return f"{base}/#/models/{name}"
    return f"{base}/#/models/{name}/versions/{version}"

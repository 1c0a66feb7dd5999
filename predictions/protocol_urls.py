"""Other servers' protocols, mounted at the site root (their clients take a base URL, not our /api/v1/):

- MLflow's scoring protocol per model: a client's base URL is /serving/<name>/;
- the Open Inference Protocol (V2): /v2/..., the model named in the path.

No trailing slashes: the clients build these paths themselves.
"""

from django.urls import path

from models_registry import converters  # noqa: F401  (registers <model_name:...>)

from . import apis_serving as apis

app_name = "protocols"
_model = "v2/models/<model_name:model_name>"
_version = f"{_model}/versions/<int:version>"
urlpatterns = [
    path("serving/<model_name:model_name>/invocations", apis.MlflowInvocationsApi.as_view(), name="mlflow_invocations"),
    path("serving/<model_name:model_name>/ping", apis.MlflowPingApi.as_view(), name="mlflow_ping"),
    path("serving/<model_name:model_name>/health", apis.MlflowPingApi.as_view(), name="mlflow_health"),
    path("serving/<model_name:model_name>/version", apis.MlflowVersionApi.as_view(), name="mlflow_version"),
    path("v2", apis.V2ServerMetadataApi.as_view(), name="v2_server"),
    path("v2/health/live", apis.V2LiveApi.as_view(), name="v2_live"),
    path("v2/health/ready", apis.V2ReadyApi.as_view(), name="v2_ready"),
    path(_model, apis.V2ModelMetadataApi.as_view(), name="v2_model"),
    path(f"{_model}/ready", apis.V2ModelReadyApi.as_view(), name="v2_model_ready"),
    path(f"{_model}/infer", apis.V2InferApi.as_view(), name="v2_infer"),
    path(_version, apis.V2ModelMetadataApi.as_view(), name="v2_version"),
    path(f"{_version}/ready", apis.V2ModelReadyApi.as_view(), name="v2_version_ready"),
    path(f"{_version}/infer", apis.V2InferApi.as_view(), name="v2_version_infer"),
]

from django.urls import path

from . import (
    apis,
    converters,  # noqa: F401  (registers <model_name:...>)
)

app_name = "models_registry_api"
urlpatterns = [
    path("models/", apis.ModelListApi.as_view(), name="models"),
    path("models/<model_name:name>/versions/", apis.ModelVersionListApi.as_view(), name="versions"),
    path(
        "models/<model_name:name>/versions/<int:version>/promote/",
        apis.ModelVersionPromoteApi.as_view(),
        name="promote",
    ),
    path("models/<model_name:name>/rollback/", apis.ModelRollbackApi.as_view(), name="rollback"),
]

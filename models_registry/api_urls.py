from django.urls import path

from . import apis

app_name = "models_registry_api"
urlpatterns = [
    path("models/", apis.ModelListApi.as_view(), name="models"),
    path("models/<str:name>/versions/", apis.ModelVersionListApi.as_view(), name="versions"),
    path("models/<str:name>/versions/<int:version>/promote/", apis.ModelVersionPromoteApi.as_view(), name="promote"),
    path("models/<str:name>/rollback/", apis.ModelRollbackApi.as_view(), name="rollback"),
]

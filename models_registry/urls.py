from django.urls import path

from . import (
    converters,  # noqa: F401  (registers <model_name:...>)
    views,
)

app_name = "models_registry"
urlpatterns = [
    path("", views.model_list, name="list"),
    path("train/", views.training_new, name="train"),
    path("register/", views.model_register, name="register"),
    path("train/<int:pk>/", views.training_job, name="training_job"),
    path("train/<int:pk>/status/", views.training_job_status, name="training_job_status"),
    path("<model_name:name>/", views.model_detail, name="detail"),
    path("<model_name:name>/rollback/", views.model_rollback, name="rollback"),
    path("<model_name:name>/versions/<int:version>/", views.version_detail, name="version"),
    path("<model_name:name>/versions/<int:version>/promote/", views.version_promote, name="promote"),
]

from django.urls import path

from . import views

app_name = "models_registry"
urlpatterns = [
    path("", views.model_list, name="list"),
    path("train/", views.training_new, name="train"),
    path("train/<int:pk>/", views.training_job, name="training_job"),
    path("train/<int:pk>/status/", views.training_job_status, name="training_job_status"),
    path("<str:name>/", views.model_detail, name="detail"),
    path("<str:name>/rollback/", views.model_rollback, name="rollback"),
    path("<str:name>/versions/<int:version>/", views.version_detail, name="version"),
    path("<str:name>/versions/<int:version>/promote/", views.version_promote, name="promote"),
]

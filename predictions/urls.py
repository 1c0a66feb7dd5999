from django.urls import path
from django.views.generic import RedirectView

from models_registry import converters  # noqa: F401  (registers <model_name:...>)

from . import views, views_scheduled

app_name = "predictions"
# Mounted at the site root: pages about one model live under /models/<name>/, next to its registry
# page; a batch job's pages are found by the job (which names its model).
urlpatterns = [
    path("models/<model_name:model_name>/predict/", views.predict, name="predict"),
    path("models/<model_name:model_name>/batch/", views.batch_upload, name="batch_upload"),
    path("models/<model_name:model_name>/predictions/", views.prediction_list, name="list"),
    path("models/<model_name:model_name>/predictions/export.csv", views.prediction_export, name="export"),
    path("models/<model_name:model_name>/scheduled/", views_scheduled.scheduled_runs, name="scheduled_runs"),
    path("predictions/batch/<int:pk>/", views.batch_job, name="batch_job"),
    path("predictions/batch/<int:pk>/status/", views.batch_job_status, name="batch_job_status"),
    path("predictions/batch/<int:pk>/download/", views.batch_job_download, name="batch_job_download"),
    # Before models had their own pages: every served model is listed on the home page.
    path("predictions/", RedirectView.as_view(pattern_name="home", permanent=False)),
]

from django.urls import path

from . import views

urlpatterns = [
    path("", views.prediction_list, name="list"),
    path("export.csv", views.prediction_export, name="export"),
    path("predict/", views.predict, name="predict"),
    path("batch/", views.batch_upload, name="batch_upload"),
    path("batch/<int:pk>/", views.batch_job, name="batch_job"),
    path("batch/<int:pk>/status/", views.batch_job_status, name="batch_job_status"),
    path("batch/<int:pk>/download/", views.batch_job_download, name="batch_job_download"),
]

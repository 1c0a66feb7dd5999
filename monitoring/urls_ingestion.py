from django.urls import path

from .views import ingestion as views

# Included by monitoring/urls.py (namespace "monitoring").
urlpatterns = [
    path("ingestion/", views.ingestion_overview, name="ingestion"),
    path("ingestion/run/", views.ingestion_run_now, name="ingestion_run_now"),
    path("ingestion/files/<int:pk>/", views.ingested_file_detail, name="ingested_file"),
    path("alerts/", views.alert_list, name="alerts"),
    path("alerts/<int:pk>/acknowledge/", views.alert_acknowledge, name="alert_acknowledge"),
]

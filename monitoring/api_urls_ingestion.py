from django.urls import path

from .apis import ingestion as apis

# Included by monitoring/api_urls.py (namespace "monitoring_api") under /api/v1/.
urlpatterns = [
    path("ingestion/files/", apis.IngestedFileListApi.as_view(), name="ingested_files"),
    path("ingestion/files/<int:pk>/", apis.IngestedFileDetailApi.as_view(), name="ingested_file"),
    path("ingestion/runs/", apis.IngestionRunListApi.as_view(), name="ingestion_runs"),
    path("alerts/", apis.AlertListApi.as_view(), name="alerts"),
    path("alerts/<int:pk>/acknowledge/", apis.AlertAcknowledgeApi.as_view(), name="alert_acknowledge"),
]

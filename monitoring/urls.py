from django.urls import path

from models_registry import converters  # noqa: F401  (registers <model_name:...>)

from .views import dashboards, experiments, ingestion

app_name = "monitoring"
# Mounted at the site root. /monitoring/ holds what spans every model (the overview of all served
# models, alerts, a file by number); a model's own pages live under /models/<name>/.
MODEL = "models/<model_name:model_name>/"
urlpatterns = [
    path("monitoring/", dashboards.overview_all, name="overview"),
    path("monitoring/alerts/", ingestion.alert_list, name="alerts"),
    path("monitoring/alerts/<int:pk>/acknowledge/", ingestion.alert_acknowledge, name="alert_acknowledge"),
    path("monitoring/ingestion/files/<int:pk>/", ingestion.ingested_file_detail, name="ingested_file"),
    path(MODEL + "monitoring/", dashboards.overview, name="model_overview"),
    path(MODEL + "ingestion/", ingestion.ingestion_overview, name="ingestion"),
    path(MODEL + "ingestion/run/", ingestion.ingestion_run_now, name="ingestion_run_now"),
    path(MODEL + "drift/", dashboards.drift, name="drift"),
    path(MODEL + "drift/reports/<int:pk>/", dashboards.drift_report, name="drift_report"),
    path(MODEL + "drift/features/<str:feature>/", dashboards.drift_feature, name="drift_feature"),
    path(MODEL + "dashboards/predictions/", dashboards.prediction_series, name="prediction_series"),
    path(MODEL + "dashboards/quality/", dashboards.data_quality, name="data_quality"),
    path(MODEL + "dashboards/performance/", dashboards.performance, name="performance"),
    path(MODEL + "challenger/", experiments.challenger, name="challenger"),
]

from django.urls import path

from models_registry import converters  # noqa: F401  (registers <model_name:...>)

from .apis import dashboards as apis

# Included by monitoring/api_urls.py (namespace "monitoring_api") under /api/v1/: one model's series and
# drift, under the model's own URL.
MODEL = "models/<model_name:model_name>/"
urlpatterns = [
    path(MODEL + "drift/reports/", apis.DriftReportListApi.as_view(), name="drift_reports"),
    path(MODEL + "drift/reports/<int:pk>/", apis.DriftReportDetailApi.as_view(), name="drift_report"),
    path(MODEL + "drift/verdict/", apis.DriftVerdictApi.as_view(), name="drift_verdict"),
    path(MODEL + "drift/history/", apis.DriftHistoryApi.as_view(), name="drift_history"),
    path(MODEL + "series/predictions/", apis.PredictionSeriesApi.as_view(), name="series_predictions"),
    path(MODEL + "series/performance/", apis.PerformanceSeriesApi.as_view(), name="series_performance"),
    path(MODEL + "series/data-quality/", apis.DataQualitySeriesApi.as_view(), name="series_data_quality"),
]

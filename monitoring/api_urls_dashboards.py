from django.urls import path

from .apis import dashboards as apis

# Included by monitoring/api_urls.py (namespace "monitoring_api") under /api/v1/.
urlpatterns = [
    path("drift/reports/", apis.DriftReportListApi.as_view(), name="drift_reports"),
    path("drift/reports/<int:pk>/", apis.DriftReportDetailApi.as_view(), name="drift_report"),
    path("drift/verdict/", apis.DriftVerdictApi.as_view(), name="drift_verdict"),
    path("drift/history/", apis.DriftHistoryApi.as_view(), name="drift_history"),
    path("series/predictions/", apis.PredictionSeriesApi.as_view(), name="series_predictions"),
    path("series/performance/", apis.PerformanceSeriesApi.as_view(), name="series_performance"),
    path("series/data-quality/", apis.DataQualitySeriesApi.as_view(), name="series_data_quality"),
]

from django.urls import include, path

app_name = "monitoring"
# Two parts, one namespace: ingestion/quality/alerts pages and the dashboards.
urlpatterns = [
    path("", include("monitoring.urls_ingestion")),
    path("", include("monitoring.urls_dashboards")),
]

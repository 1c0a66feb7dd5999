from django.urls import include, path

app_name = "monitoring_api"
urlpatterns = [
    path("", include("monitoring.api_urls_ingestion")),
    path("", include("monitoring.api_urls_dashboards")),
]

from django.urls import include, path

app_name = "predictions"
# Parts in one namespace: predict/batch/history pages, and the scheduled job's pages.
urlpatterns = [
    path("", include("predictions.urls_pages")),
    path("", include("predictions.urls_scheduled")),
]

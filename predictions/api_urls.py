from django.urls import include, path

app_name = "predictions_api"
urlpatterns = [
    path("", include("predictions.api_urls_serving")),
]

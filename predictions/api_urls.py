from django.urls import path

from models_registry import converters  # noqa: F401  (registers <model_name:...>)

from . import apis

app_name = "predictions_api"
urlpatterns = [
    path("models/<model_name:model_name>/predict/", apis.PredictApi.as_view(), name="predict"),
    path("models/<model_name:model_name>/predictions/", apis.PredictionListApi.as_view(), name="model_predictions"),
    path("predictions/", apis.PredictionListApi.as_view(), name="predictions"),
    path("predictions/<int:prediction_id>/feedback/", apis.PredictionFeedbackApi.as_view(), name="feedback"),
    path("scheduled-runs/", apis.ScheduledRunListApi.as_view(), name="scheduled_runs"),
    path("health/", apis.HealthApi.as_view(), name="health"),
    # The unscoped predict URL of the single-model days answers 410 naming the URL to use.
    path("predict/", apis.PredictMovedApi.as_view(), name="predict_moved"),
]

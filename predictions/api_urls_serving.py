from django.urls import path

from . import apis

urlpatterns = [
    path("predict/", apis.PredictApi.as_view(), name="predict"),
    path("predictions/", apis.PredictionListApi.as_view(), name="predictions"),
    path("predictions/<int:prediction_id>/feedback/", apis.PredictionFeedbackApi.as_view(), name="feedback"),
    path("scheduled-runs/", apis.ScheduledRunListApi.as_view(), name="scheduled_runs"),
    path("health/", apis.HealthApi.as_view(), name="health"),
]

from django.urls import path

from . import views

app_name = "retraining"

urlpatterns = [
    path("models/<str:name>/retraining/", views.model_retraining, name="model"),
    path("models/<str:name>/retraining/run/", views.retrain_now, name="run"),
    path("models/<str:name>/retraining/jobs/<int:pk>/", views.retrain_job, name="job"),
]

from django.urls import path

from . import views_scheduled

urlpatterns = [
    path("scheduled/", views_scheduled.scheduled_runs, name="scheduled_runs"),
]

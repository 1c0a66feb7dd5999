from django.urls import path

from .views import dashboards as views

# Included by monitoring/urls.py (namespace "monitoring").
urlpatterns = [
    path("", views.overview, name="overview"),
    path("drift/", views.drift, name="drift"),
    path("drift/reports/<int:pk>/", views.drift_report, name="drift_report"),
    path("drift/features/<str:feature>/", views.drift_feature, name="drift_feature"),
    path("dashboards/predictions/", views.prediction_series, name="prediction_series"),
    path("dashboards/quality/", views.data_quality, name="data_quality"),
    path("dashboards/performance/", views.performance, name="performance"),
]

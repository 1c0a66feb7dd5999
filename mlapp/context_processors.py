from django.conf import settings


def platform(request):
    return {
        "MLFLOW_UI_URL": settings.MLFLOW_UI_URL,
        "SERVED_MODEL_NAME": settings.MLAPP_MODEL_NAME,
    }

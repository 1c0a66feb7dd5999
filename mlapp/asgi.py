import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlapp.settings")
os.environ.setdefault("OMP_NUM_THREADS", "1")

application = get_asgi_application()

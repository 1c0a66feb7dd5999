import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlapp.settings")
os.environ.setdefault("OMP_NUM_THREADS", "1")

application = get_wsgi_application()

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import health

api_v1 = [
    path("", include("predictions.api_urls")),
    path("", include("models_registry.api_urls")),
    path("", include("monitoring.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="monitoring:overview", permanent=False), name="home"),
    # Browsers ask for /favicon.ico whatever the page says.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    # Probes (docs/security.md, "Health"): with or without the trailing slash, never redirected.
    re_path(r"^health/live/?$", health.live, name="health-live"),
    re_path(r"^health/ready/?$", health.ready, name="health-ready"),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include(api_v1)),
    # MLflow's scoring protocol (/serving/<name>/...) and the Open Inference Protocol (/v2/...).
    path("", include("predictions.protocol_urls")),
    # Pages of one model live under /models/<name>/ whichever app serves them; each app's
    # urls.py holds its full paths.
    path("", include("predictions.urls")),
    path("", include("monitoring.urls")),
    path("", include("retraining.urls")),
    path("models/", include("models_registry.urls")),
]

# Form fields past DATA_UPLOAD_MAX_MEMORY_SIZE: a 413 naming the limit (mlapp/middleware.py).
handler400 = "mlapp.middleware.bad_request"

"""Page-level error handling."""

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults

from core.api_errors import DATABASE_UNAVAILABLE, RETRY_AFTER_SECONDS, body_too_large_detail
from predictions.apis_serving import protocol_error_response

logger = logging.getLogger(__name__)


class DatabaseUnavailableMiddleware:
    """A page whose database cannot be reached answers 503 "try again shortly", not 500.

    The page is rendered without the request context: that would ask the database
    for the session and the user again. (The REST API has its own handler, in
    core/api_errors.py.)
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, DATABASE_UNAVAILABLE):
            return None
        logger.error("Database unavailable during %s: %s", request.path, exception)
        response = HttpResponse(render_to_string("503.html"), status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


def _too_large(request, size: int | None = None) -> HttpResponse:
    """413: JSON naming the limit on the API (the protocols' own error shape under /serving/ and /v2), a page
    elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": body_too_large_detail(size)}, status=413)
    if protocol := protocol_error_response(request.path, 413, body_too_large_detail(size)):
        return protocol
    limit_mb = f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE / 2**20:g}"
    return HttpResponse(render_to_string("413.html", {"limit_mb": limit_mb}), status=413)


class RequestSizeMiddleware:
    """A body Django would keep in memory past DATA_UPLOAD_MAX_MEMORY_SIZE is refused with 413
    before it is read. Multipart bodies pass: their files do not count (the upload views cap
    them by MLAPP_MAX_UPLOAD_MB) and Django counts their other fields (`bad_request` below)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            size = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            size = 0
        if size > settings.DATA_UPLOAD_MAX_MEMORY_SIZE and not request.content_type.startswith("multipart/"):
            return _too_large(request, size)
        return self.get_response(request)


def bad_request(request, exception, template_name="400.html"):
    """handler400: form fields past the limit are a 413 naming it, not a bare 400; JSON on the API."""
    if isinstance(exception, RequestDataTooBig):
        return _too_large(request)
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Bad request: it could not be read, so nothing was done."}, status=400)
    return defaults.bad_request(request, exception, template_name=template_name)


def page_not_found(request, exception, template_name="404.html"):
    """handler404: an API address that matches no URL answers in the API's error shape, as the
    API's own 404s do (a protocol's address in its protocol's); pages get the page (never the URL
    conf: DEBUG is off, even in the demo)."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"No API endpoint at {request.path[:200]}"}, status=404)
    if protocol := protocol_error_response(request.path, 404, f"No endpoint at {request.path[:200]}"):
        return protocol
    return defaults.page_not_found(request, exception, template_name=template_name)


def server_error(request, template_name="500.html"):
    """handler500: JSON on the API, the page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": "Internal error: it was logged. Retry, or tell the team running mlapp."}, status=500
        )
    return defaults.server_error(request, template_name=template_name)

"""Page-level error handling."""

import logging

from django.http import HttpResponse
from django.template.loader import render_to_string

from core.api_errors import DATABASE_UNAVAILABLE, RETRY_AFTER_SECONDS

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

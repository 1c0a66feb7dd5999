"""REST API errors beyond DRF's own: a database that cannot be reached is a 503
(retry later), not a 500 (our bug)."""

import logging

from django.db import InterfaceError, OperationalError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
# The database could not be reached (connection refused or lost), as opposed to a query
# it refused: worth a "retry later" for pages (mlapp/middleware.py) and the API alike.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


def api_exception_handler(exc, context):
    response = exception_handler(exc, context)
    if response is None and isinstance(exc, DATABASE_UNAVAILABLE):
        logger.error("Database unavailable during %s: %s", context["request"].path, exc)
        return Response(
            {"detail": "The database is unavailable: nothing was stored. Retry later."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return response

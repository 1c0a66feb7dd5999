"""The REST API's one exception handler: every error body has the same shape.

    {"detail": "<one sentence>"}                                  # most errors
    {"detail": "Invalid input", "errors": [{"field": "since", "problem": "..."}]}

Services raise `core.errors.ApplicationError` (its status code, message and
errors), DRF raises its own exceptions (401, 403, 404, 405, 415, 429 keep DRF's
`detail`; validation errors are flattened into `errors`), and a database that
cannot be reached is a 503 (retry later), not a 500 (our bug). Views hold no
try/except to shape errors.
"""

import logging

from django.core.exceptions import ObjectDoesNotExist
from django.db import InterfaceError, OperationalError
from rest_framework import status
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler

from .errors import INVALID_INPUT, ApplicationError, UnavailableError

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
# The database could not be reached (connection refused or lost), as opposed to a query
# it refused: worth a "retry later" for pages (mlapp/middleware.py) and the API alike.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


def _field_errors(detail, field: str | None = None) -> list[dict]:
    """DRF's nested validation detail as a flat list of {field, problem}; nested fields as "a.b", "a[0]"."""
    if isinstance(detail, dict):
        return [
            error
            for key, value in detail.items()
            for error in _field_errors(value, None if key == "non_field_errors" else _join(field, str(key)))
        ]
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [{"field": field, "problem": str(item)} for item in detail]
        return [error for i, item in enumerate(detail) for error in _field_errors(item, f"{field or ''}[{i}]")]
    return [{"field": field, "problem": str(detail)}]


def _join(parent: str | None, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _body(detail: str, errors: list[dict] | None = None) -> dict:
    return {"detail": detail, "errors": errors} if errors else {"detail": detail}


def api_exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if isinstance(exc, UnavailableError) else None
        return Response(_body(exc.message, exc.errors), status=exc.status_code, headers=headers)
    if isinstance(exc, ObjectDoesNotExist):
        return Response(_body(str(exc) or "Not found."), status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, ParseError):
        problem = f"malformed JSON: {exc.detail}" if "JSON" in str(exc.detail) else str(exc.detail)
        return Response(_body(INVALID_INPUT, [{"field": None, "problem": problem}]), status=exc.status_code)
    response = exception_handler(exc, context)
    if response is None:
        if isinstance(exc, DATABASE_UNAVAILABLE):
            logger.error("Database unavailable during %s: %s", context["request"].path, exc)
            return Response(
                _body("The database is unavailable: nothing was stored. Retry later."),
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return None  # ours: a 500, logged by Django
    if isinstance(exc, ValidationError):
        response.data = _body(INVALID_INPUT, _field_errors(exc.detail))
    elif not (isinstance(response.data, dict) and set(response.data) == {"detail"}):
        response.data = _body(str(response.data))
    return response

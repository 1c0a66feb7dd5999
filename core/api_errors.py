"""The REST API's one exception handler: every error body has the same shape.

    {"detail": "<one sentence>"}                                  # most errors
    {"detail": "Invalid input", "errors": [{"field": "since", "problem": "..."}]}

Services raise `core.errors.ApplicationError` (its status code, message and
errors), DRF raises its own exceptions (401, 403, 404, 405, 415, 429 keep DRF's
`detail`; validation errors are flattened into `errors`), and a database that
cannot be reached is a 503 (retry later), not a 500 (our bug), and a body past
DATA_UPLOAD_MAX_MEMORY_SIZE a 413 naming the limit (`mlapp.middleware.RequestSizeMiddleware`
refuses most before they are read). Views hold no try/except to shape errors.
"""

import logging

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig
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


def body_too_large_detail(size: int | None = None) -> str:
    """The 413's sentence: what was sent (when known) and the limit, with the setting that moves it."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / 2**20
    sent = f" ({size / 2**20:.1f} MiB)" if size else ""
    return (
        f"Request body too large{sent}: the limit is {limit:g} MiB (MLAPP_MAX_BODY_MB); "
        "nothing was stored. Send fewer rows per request."
    )


def body_too_large_response(size: int | None = None) -> Response:
    return Response(_body(body_too_large_detail(size)), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)


def api_exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):  # form fields past DATA_UPLOAD_MAX_MEMORY_SIZE
        return body_too_large_response()
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

"""The one error a service raises for a user to act on (HackSoft's `ApplicationError`).

Services and selectors raise it (or a subclass naming their domain: a promotion
refused, a batch file that cannot be read); pages show its message, and the REST
API's one exception handler (`core.api_errors`) turns it into the one error body:

    {"detail": "<what is wrong, one sentence>", "errors": [{"field": ..., "problem": ...}, ...]}

`errors` is there when particular input is wrong (rows of a predict request add
`"row"`). Plain Python: every app may import it, whatever its layer.
"""

INVALID_INPUT = "Invalid input"  # the detail of every error that lists bad fields or rows


class ApplicationError(Exception):
    """Something the caller can fix; `message` says what, `errors` name the fields or rows."""

    status_code = 400

    def __init__(self, message: str, *, errors: list[dict] | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class NotFoundError(ApplicationError):
    status_code = 404


class ForbiddenError(ApplicationError):
    """The caller may see this but not do that (e.g. feedback on someone else's prediction)."""

    status_code = 403


class UnavailableError(ApplicationError):
    """Not now: a dependency (the model registry, the database) is away; retry later."""

    status_code = 503

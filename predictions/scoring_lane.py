"""The scoring lane: a request to score, sent with an API token, answered without the page stack.

Nearly every request a serving deployment gets is one kind: `POST` to a scoring URL
(`/api/v1/models/{name}/predict/`, MLflow's `/serving/{name}/invocations`, V2's `.../infer`) with a
token in `Authorization`. Through the whole stack it pays for middleware that only pages need
(sessions, CSRF, messages, the login lockout, static files), for resolving the URL against every
page's pattern and for DRF's per-request setup: together more than its validation, scoring and
inference-log row (bench/README.md). This middleware sits right below the ones every answer needs
(security headers, X-Frame-Options, the body-size limit) and runs the DRF view the URL names through
DRF's own pieces: the view's authentication classes, content negotiation, permissions, parser and
throttles, then its handler, exception handler and `finalize_response`. The answer is the one the
whole stack gives; tests/predictions/test_scoring_lane.py compares the two, headers and all.

It takes a request only while every step before the throttles lets it through as it is. Anything
else goes on down the stack untouched and DRF answers it as always: another URL or method; no token,
a wrong one, or a session (DRF checks its CSRF token); an `Accept` or `?format=` asking for the
browsable API or for nothing the view renders; a body the view's parser refuses. Those steps change
nothing, so such a request is judged once. The throttles count: a request they refuse is counted
again by the stack, which answers the 429; that only spends a budget that is already spent.
"""

from __future__ import annotations

import functools
import io

from django.conf import settings
from django.core.signals import setting_changed
from django.urls import Resolver404, get_resolver
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import APIException
from rest_framework.renderers import JSONRenderer

from .apis import PredictApi
from .apis_serving import MlflowInvocationsApi, V2InferApi

SCORING_VIEWS = (PredictApi, MlflowInvocationsApi, V2InferApi)
MAX_PATHS = 1024  # resolved paths remembered per process (a path per model and endpoint)


class ScoringLaneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method == "POST" and (match := _scoring_match(settings.ROOT_URLCONF, request.path_info)):
            # CommonMiddleware's checks of every request, which this one answers below.
            request.get_host()  # ALLOWED_HOSTS: a DisallowedHost is Django's 400, as on the whole stack
            response = scoring_answer(request, match)
            if response is not None:
                return response
        return self.get_response(request)


@functools.lru_cache(maxsize=MAX_PATHS)
def _scoring_match(urlconf: str, path: str):
    """The URL's match when it names a scoring view (resolved against the site's own URLs), else None."""
    try:
        match = get_resolver(urlconf).resolve(path)
    except Resolver404:
        return None
    return match if getattr(match.func, "view_class", None) in SCORING_VIEWS else None


def _forget_matches(*, setting, **kwargs):
    if setting == "ROOT_URLCONF":
        _scoring_match.cache_clear()


setting_changed.connect(_forget_matches)


class _LaneRequest:
    """What the views, DRF's throttles and its exception handling read of a request: Django's own,
    with the user, token, body and renderer DRF's `Request` would carry."""

    def __init__(self, request):
        self._request = request
        self.user = self.auth = self.data = None
        self.accepted_renderer = self.accepted_media_type = None
        # DRF's: the header as sent, parameters and all (Django's drops them).
        self.content_type = request.META.get("CONTENT_TYPE", request.META.get("HTTP_CONTENT_TYPE", ""))

    def __getattr__(self, name):
        return getattr(self._request, name)

    @property
    def query_params(self):  # parsed when asked for (a `?format=` to negotiate)
        return self._request.GET

    def force_plaintext_errors(self, value):  # DRF calls it on an uncaught exception under DEBUG
        self._request.is_ajax = lambda: value


def scoring_answer(request, match):
    """The view's answer, or None when a step before the view would not let the request through
    unchanged (the whole stack then answers it)."""
    if any(database.get("ATOMIC_REQUESTS") for database in settings.DATABASES.values()):
        return None  # Django would wrap the view in a transaction
    view = match.func.view_class(**match.func.view_initkwargs)
    if view.versioning_class is not None:
        return None  # DRF would set the request's version
    view.setup(request, *match.args, **match.kwargs)
    lane_request = _LaneRequest(request)
    view.request = lane_request
    view.headers = view.default_response_headers
    try:
        if not _admitted(view, lane_request):
            return None
        if not all(throttle.allow_request(lane_request, view) for throttle in view.get_throttles()):
            return None
        request.resolver_match = match
        response = view.post(lane_request, *match.args, **match.kwargs)
    except Exception as exc:  # as DRF's dispatch: the view's exception handler answers
        # Not a refusal: e.g. the database is away for the token's lookup (a 503, answered once, not
        # after a second wait on the stack).
        response = view.handle_exception(exc)
    response = view.finalize_response(lane_request, response, *match.args, **match.kwargs)
    if hasattr(response, "render"):
        response.render()
    if not response.streaming and not response.has_header("Content-Length"):
        response.headers["Content-Length"] = str(len(response.content))  # as CommonMiddleware sets it
    return response


def _admitted(view, lane_request) -> bool:
    """DRF's steps before the throttles, on the lane's request: whether each lets it through as it is.
    A refusal (DRF's exceptions: a wrong token, a body its parser refuses) is False, for the stack to
    answer; any other error is raised."""
    try:
        view.format_kwarg = view.get_format_suffix(**view.kwargs)
        renderer, media_type = view.get_content_negotiator().select_renderer(
            lane_request, view.get_renderers(), view.format_kwarg
        )
        if not isinstance(renderer, JSONRenderer):
            return False  # the browsable API's page reads DRF's whole request
        lane_request.accepted_renderer, lane_request.accepted_media_type = renderer, media_type
        authenticated = _token_authenticate(view, lane_request._request)
        if authenticated is None:
            return False
        lane_request.user, lane_request.auth = authenticated
        if not all(permission.has_permission(lane_request, view) for permission in view.get_permissions()):
            return False
        if view.parser_classes:
            lane_request.data = _parsed(view, lane_request)
            return lane_request.data is not None
        return True
    except APIException:
        return False


def _token_authenticate(view, request):
    """(user, token) from the first of the view's authenticators that answers, when that is a token
    class; None when none answers or one that is not comes first (DRF's order). Raises for a wrong token."""
    for authenticator in view.get_authenticators():
        if not isinstance(authenticator, TokenAuthentication):
            return None
        authenticated = authenticator.authenticate(request)
        if authenticated is not None:
            return authenticated
    return None


def _parsed(view, lane_request):
    """The body as the view's parser reads it (DRF's `Request._parse`), or None when it has no body
    or no parser takes its content type."""
    request = lane_request._request
    if not lane_request.content_type or not request.body:
        return None
    parser = view.get_content_negotiator().select_parser(lane_request, view.get_parsers())
    if parser is None:
        return None
    context = {
        **view.get_parser_context(request),
        "request": lane_request,
        "encoding": request.encoding or settings.DEFAULT_CHARSET,
    }
    return parser.parse(io.BytesIO(request.body), lane_request.content_type, context)

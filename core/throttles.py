"""REST API throttles: a budget of requests per user (or token) and per client address.

DRF's own `SimpleRateThrottle` keeps the time of every request of the window in one cache entry
and reads, rewrites and re-sends the whole list on each request: at the predict budget that is a
list of 1,200 floats pickled twice per request, and two gunicorn workers reading and writing it
at once lose each other's requests. These count in fixed windows with one atomic `incr` on the
shared Django cache (Redis in production: one round trip, exact across workers and machines).
A fixed window lets a client spend up to twice its rate across a window boundary; the budget is
still bounded, and `Retry-After` says when the window ends.

Rates live in `settings.MLAPP_THROTTLE_RATES` (scope -> "N/second|minute|hour|day", or None for
no limit), read on each request so tests and operators can change them (docs/security.md).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import BaseThrottle

from .rates import rate_parse


class FixedWindowThrottle(BaseThrottle):
    """`scope`'s budget per identity per window; subclasses say whose requests they count."""

    scope: str = ""

    def identity(self, request, view) -> str | None:
        """Whose budget this request spends, or None when this throttle does not apply."""
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        rate = settings.MLAPP_THROTTLE_RATES.get(self.scope)
        parsed = rate_parse(rate)
        ident = self.identity(request, view) if parsed else None
        if ident is None:
            return True
        limit, period = parsed
        now = time.time()
        window = int(now // period)
        self.wait_seconds = max(1, int((window + 1) * period - now + 0.999))
        key = f"throttle:{self.scope}:{ident}:{period}:{window}"
        cache = caches[settings.MLAPP_THROTTLE_CACHE]
        # add() is a no-op when the key exists; incr() is atomic on Redis (one INCR).
        cache.add(key, 0, timeout=period + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=period + 1)
            count = 1
        return count <= limit

    def wait(self):
        return getattr(self, "wait_seconds", None)


class UserThrottle(FixedWindowThrottle):
    """Authenticated requests, per user: DRF tokens are one per user, so also per token."""

    scope = "user"

    def identity(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return None
        if getattr(view, "throttle_scope", None) == "predict":
            return None  # counted by PredictThrottle instead
        return str(request.user.pk)


class PredictThrottle(UserThrottle):
    """Scoring endpoints (views with `throttle_scope = "predict"`) have a budget of their own."""

    scope = "predict"

    def identity(self, request, view):
        if getattr(view, "throttle_scope", None) != "predict":
            return None
        if not (request.user and request.user.is_authenticated):
            return None
        return str(request.user.pk)


class AnonThrottle(FixedWindowThrottle):
    """Unauthenticated requests, per client address (REMOTE_ADDR, or X-Forwarded-For's hop
    when NUM_PROXIES says a proxy is in front, DRF's rule)."""

    scope = "anon"

    def identity(self, request, view):
        if request.user and request.user.is_authenticated:
            return None
        return self.get_ident(request)

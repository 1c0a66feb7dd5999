"""REST API throttles: a budget of requests per user (or token) and per client address.

DRF's own `SimpleRateThrottle` keeps the time of every request of the window in one cache entry
and reads, rewrites and re-sends the whole list on each request: at the predict budget that is a
list of 1,200 floats pickled twice per request, and two gunicorn workers reading and writing it
at once lose each other's requests. These count in fixed windows with an atomic `incr` on the
shared Django cache (Redis in production: exact across workers and machines); a process takes up to
16 numbers at a time (1 % of the budget), so most requests cost no round trip (`window_count_take`).
A fixed window lets a client spend up to twice its rate across a window boundary; the budget is
still bounded, and `Retry-After` says when the window ends.

Rates live in `settings.MLAPP_THROTTLE_RATES` (scope -> "N/second|minute|hour|day", or None for
no limit), read on each request so tests and operators can change them (docs/security.md).
"""

from __future__ import annotations

import functools
import threading
import time

import redis
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import BaseThrottle

from .rates import rate_parse

LEASE_MAX = 16  # counts a process takes from the shared counter at once (see window_count_take)
LEASE_SHARE = 100  # ... at most 1/100 of the budget, so leases left unspent elsewhere cost a client ~1 %


def lease_size(limit: int) -> int:
    return max(1, min(LEASE_MAX, limit // LEASE_SHARE))


def window_count_take(alias: str, key: str, *, ttl: int, lease: int = 1) -> int:
    """The number of this request in the window counted by ``key`` on cache ``alias``.

    With ``lease`` > 1 the process takes that many numbers from the shared counter in one round trip
    and hands them out itself: a request costs a round trip only every ``lease`` requests. Numbers a
    process took and did not hand out before the window ended are lost, so a client can be refused up
    to (processes - 1) x (lease - 1) requests before its budget runs out, never after it.
    """
    if lease > 1:
        number = _leases.take(key)
        if number is not None:
            return number
    last = _shared_incr(alias, key, ttl=ttl, by=lease)
    first = last - lease + 1
    if lease > 1:
        _leases.put(key, first + 1, last, expires=time.monotonic() + ttl)
    return first


def _shared_incr(alias: str, key: str, *, ttl: int, by: int) -> int:
    """Add ``by`` to the shared counter ``key`` (created with a ``ttl``) and return its new value.

    On Redis: SET NX EX and INCRBY in one pipelined round trip on one client per process. Django's
    RedisCache builds a new ``redis.Redis`` for every call (its ~170 response callbacks copied each
    time) and sends add and incr apart: 2.4 ms of a 6 ms predict request (bench/profile_predict.py).
    Elsewhere (files, memory): the cache's own add and incr.
    """
    cache = caches[alias]
    if isinstance(cache, RedisCache):
        full_key = cache.make_and_validate_key(key)
        pipe = _redis_client(settings.CACHES[alias]["LOCATION"]).pipeline(transaction=False)
        pipe.set(full_key, 0, ex=ttl, nx=True)
        pipe.incrby(full_key, by)
        return int(pipe.execute()[1])
    # add() is a no-op when the key exists.
    cache.add(key, 0, timeout=ttl)
    try:
        return cache.incr(key, by)
    except ValueError:  # expired between add and incr
        cache.add(key, by, timeout=ttl)
        return by


@functools.cache
def _redis_client(location: str) -> redis.Redis:
    # Thread-safe: each command takes a connection from the client's pool.
    return redis.Redis.from_url(location)


class _Leases:
    """Per process: for each counter key, the numbers taken from the shared counter not handed out yet."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_key: dict[str, list] = {}  # key -> [next, last, expires]

    def take(self, key: str) -> int | None:
        with self._lock:
            lease = self._by_key.get(key)
            if lease is None or lease[0] > lease[1]:
                return None
            lease[0] += 1
            return lease[0] - 1

    def put(self, key: str, first: int, last: int, *, expires: float) -> None:
        with self._lock:
            if len(self._by_key) > 10_000:  # old windows' keys: forget the expired ones
                now = time.monotonic()
                self._by_key = {k: v for k, v in self._by_key.items() if v[2] > now}
            self._by_key[key] = [first, last, expires]

    def clear(self) -> None:
        with self._lock:
            self._by_key.clear()


_leases = _Leases()


def throttle_leases_forget() -> None:
    """Drop this process's leased counts (tests: each starts with empty counters)."""
    _leases.clear()


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
        number = window_count_take(settings.MLAPP_THROTTLE_CACHE, key, ttl=period + 1, lease=lease_size(limit))
        return number <= limit

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

"""Token authentication for the API, its lookups remembered per process for a few seconds.

DRF's `TokenAuthentication` reads the token and its user from the database on every request: a
query per prediction (see bench/serving.py). Here a token that checked out is remembered for
`MLAPP_TOKEN_CACHE_SECONDS` (5 s; 0 turns the cache off). A token deleted, a user deactivated or
changed through the ORM is forgotten at once in the process that did it (signals) and within those
seconds in every other process. A wrong token is never remembered: each one is a lookup.
"""

from __future__ import annotations

import copy
import threading
import time

from django.conf import settings
from rest_framework.authentication import TokenAuthentication

MAX_ENTRIES = 10_000  # distinct tokens remembered at once per process; past it the memory starts again

_entries: dict[str, tuple[float, object, object]] = {}  # key -> (checked at, user, token)
_lock = threading.Lock()


class CachedTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, checked in the database at most once per key every few seconds."""

    def authenticate_credentials(self, key):
        ttl = settings.MLAPP_TOKEN_CACHE_SECONDS
        entry = _entries.get(key)
        if entry is not None and time.monotonic() - entry[0] < ttl:
            return _fresh_copy(entry[1]), entry[2]
        user, token = super().authenticate_credentials(key)  # refuses an unknown key or an inactive user
        if ttl > 0:
            with _lock:
                if len(_entries) >= MAX_ENTRIES:
                    _entries.clear()
                _entries[key] = (time.monotonic(), user, token)
        return _fresh_copy(user), token


# Django caches a user's permissions on the user object: a cached user must not carry them into
# the next request, or a permission granted a second ago would be missed until the entry expires.
_PERMISSION_CACHES = ("_perm_cache", "_user_perm_cache", "_group_perm_cache")


def _fresh_copy(user):
    """A copy per request, without the permission caches an earlier request left on it.

    What `copy.copy` makes of a model instance (its fields, and a state and related-object cache of
    its own, as `Model.__getstate__` copies them), built directly: `copy.copy` goes through pickling's
    `__reduce__`, which cost more than the rest of authenticating a cached token."""
    fresh = object.__new__(type(user))
    fresh.__dict__.update(user.__dict__)
    fresh._state = copy.copy(user._state)
    fresh._state.fields_cache = user._state.fields_cache.copy()
    for attribute in _PERMISSION_CACHES:
        fresh.__dict__.pop(attribute, None)
    return fresh


class BearerTokenAuthentication(CachedTokenAuthentication):
    """The same tokens as `Authorization: Bearer <key>`, the form many MLflow and KServe clients send."""

    keyword = "Bearer"


def token_cache_forget(*, key: str | None = None, user_id=None) -> None:
    """Forget one token, every token of one user, or (neither given) everything."""
    with _lock:
        if key is None and user_id is None:
            _entries.clear()
            return
        for cached_key, (_, user, _token) in list(_entries.items()):
            if cached_key == key or (user_id is not None and user.pk == user_id):
                _entries.pop(cached_key, None)


def _token_changed(sender, instance, **kwargs):
    token_cache_forget(key=instance.key)


def _user_changed(sender, instance, **kwargs):
    token_cache_forget(user_id=instance.pk)


def token_cache_signals_connect() -> None:
    from django.db.models.signals import post_delete, post_save  # noqa: PLC0415 (called from AppConfig.ready)

    for signal in (post_save, post_delete):
        signal.connect(_token_changed, sender="authtoken.Token", dispatch_uid=f"token_cache_token_{signal}")
        signal.connect(_user_changed, sender=settings.AUTH_USER_MODEL, dispatch_uid=f"token_cache_user_{signal}")

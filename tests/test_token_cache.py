"""The API's token lookups, remembered per process for a few seconds (core/authentication.py)."""

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.authentication import _fresh_copy, token_cache_forget

pytestmark = pytest.mark.django_db
URL = "/api/v1/scheduled-runs/"


@pytest.fixture(autouse=True)
def _empty_cache():
    token_cache_forget()
    yield
    token_cache_forget()


@pytest.fixture
def token(plain_user):
    return Token.objects.create(user=plain_user)


def _get(token_key, keyword="Token"):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {token_key}")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(URL)
    token_queries = [q for q in queries.captured_queries if "authtoken_token" in q["sql"]]
    return response.status_code, len(token_queries)


def test_a_token_is_looked_up_once_then_remembered(token):
    assert _get(token.key) == (200, 1)
    assert _get(token.key) == (200, 0)


def test_with_no_cache_every_request_looks_it_up(token, settings):
    settings.MLAPP_TOKEN_CACHE_SECONDS = 0

    assert _get(token.key) == (200, 1)
    assert _get(token.key) == (200, 1)


def test_a_deleted_token_stops_working_at_once(token):
    assert _get(token.key)[0] == 200
    token.delete()

    assert _get(token.key) == (401, 1)


def test_a_deactivated_user_is_refused_at_once(token, plain_user):
    assert _get(token.key)[0] == 200
    plain_user.is_active = False
    plain_user.save()

    assert _get(token.key)[0] == 401


def test_a_wrong_token_is_never_remembered(token):
    assert _get("0" * 40) == (401, 1)
    assert _get("0" * 40) == (401, 1)


def test_an_entry_older_than_the_cache_seconds_is_checked_again(token, settings):
    assert _get(token.key) == (200, 1)
    settings.MLAPP_TOKEN_CACHE_SECONDS = 0.000001

    assert _get(token.key) == (200, 1)


def test_each_request_gets_its_own_copy_of_the_cached_user(plain_user):
    """What one request does to its user (a permission check caches permissions on it, a related
    object cached) is not seen by the next request that authenticates with the same token."""
    plain_user.user_permissions.add(Permission.objects.get(codename="view_prediction"))
    cached = type(plain_user).objects.get(pk=plain_user.pk)
    assert cached.has_perm("predictions.view_prediction")  # fills the permission caches
    cached._state.fields_cache["marker"] = object()

    fresh = _fresh_copy(cached)

    assert fresh is not cached and fresh == cached and fresh.username == cached.username
    assert not any(hasattr(fresh, attribute) for attribute in ("_perm_cache", "_user_perm_cache"))
    assert fresh._state is not cached._state and fresh._state.db == cached._state.db
    assert fresh._state.adding is False and "marker" in fresh._state.fields_cache
    fresh._state.fields_cache.pop("marker")
    fresh.first_name = "changed"
    assert "marker" in cached._state.fields_cache and cached.first_name != "changed"

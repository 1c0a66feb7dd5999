"""The API's token lookups, remembered per process for a few seconds (core/authentication.py)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.authentication import token_cache_forget

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

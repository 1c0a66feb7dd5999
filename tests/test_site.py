"""Site-wide URLs."""

import pytest

pytestmark = pytest.mark.django_db


def test_the_favicon_is_served(client):
    redirect = client.get("/favicon.ico")
    assert redirect.status_code == 301
    assert client.get(redirect["Location"]).status_code == 200


def test_a_page_whose_database_is_down_is_a_503_not_a_500(client, monkeypatch):
    from django.db import OperationalError

    def database_down(*args, **kwargs):
        raise OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')

    # The first database access of a page: the session behind request.user.
    monkeypatch.setattr("django.contrib.sessions.backends.db.SessionStore.load", database_down)
    client.cookies["sessionid"] = "x" * 32
    client.raise_request_exception = False

    response = client.get("/monitoring/")

    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert "The database is unavailable" in response.content.decode()

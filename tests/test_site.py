"""Site-wide URLs."""

import pytest
from django.db import OperationalError

pytestmark = pytest.mark.django_db


def test_the_favicon_is_served(client):
    redirect = client.get("/favicon.ico")
    assert redirect.status_code == 301
    assert client.get(redirect["Location"]).status_code == 200


def test_a_page_whose_database_is_down_is_a_503_not_a_500(client, monkeypatch):
    def database_down(*args, **kwargs):
        raise OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')

    # The first database access of a page: the session behind request.user.
    monkeypatch.setattr("django.contrib.sessions.backends.db.SessionStore.load", database_down)
    client.cookies["sessionid"] = "x" * 32
    client.raise_request_exception = False

    response = client.get("/monitoring/")

    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert "The database is unavailable" in response.content.decode()


@pytest.mark.django_db
def test_the_model_switcher_names_the_page_s_model_and_opens_the_same_page_for_another(
    user_client, churn_model, housing_model
):
    drift = user_client.get(f"/models/{housing_model.name}/drift/")
    registry = user_client.get(f"/models/{housing_model.name}/")

    assert drift.context["model_nav"]["current"] == registry.context["model_nav"]["current"] == housing_model.name
    assert (churn_model.name, f"/models/{churn_model.name}/drift/") in drift.context["model_nav"]["others"]
    assert (churn_model.name, f"/models/{churn_model.name}/") in registry.context["model_nav"]["others"]
    assert f'href="/models/{churn_model.name}/drift/"' in drift.content.decode()

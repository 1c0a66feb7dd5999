"""Site-wide URLs."""

import pytest

pytestmark = pytest.mark.django_db


def test_the_favicon_is_served(client):
    redirect = client.get("/favicon.ico")
    assert redirect.status_code == 301
    assert client.get(redirect["Location"]).status_code == 200

import csv
import io

import pytest

from predictions.models import Prediction, Source
from tests.conftest import CHURN, HOUSING

pytestmark = pytest.mark.django_db
PREDICT, HISTORY, EXPORT = (
    f"/models/{CHURN}/{page}" for page in ("predict/", "predictions/", "predictions/export.csv")
)

CHURN_FORM = {
    "age": "40",
    "tenure_months": "3",
    "monthly_charges": "80.5",
    "total_charges": "241.5",
    "support_calls": "2",
    "contract": "month-to-month",
    "internet_service": "fiber",
    "payment_method": "card",
    "region": "north",
}


def test_form_is_generated_from_the_profile(user_client, churn_model):
    page = user_client.get(PREDICT).content.decode()
    assert '<option value="month-to-month"' in page and 'name="monthly_charges"' in page
    assert "training range" in page and f"v{churn_model.version}" in page


def test_form_starts_on_a_typical_row_from_the_profile(user_client, churn_model):
    features = {f["name"]: f for f in churn_model.profile["features"]}
    page = user_client.get(PREDICT).content.decode()

    age_median = round(features["age"]["quantiles"]["0.5"])
    assert f'name="age" value="{age_median}"' in page
    shares = features["contract"]["categories"]
    most_frequent_contract = max(shares, key=shares.get)  # not the first key: jsonb does not keep the order
    assert f'<option value="{most_frequent_contract}" selected>' in page


def test_each_model_has_its_own_form_side_by_side(user_client, churn_model, housing_model):
    house = user_client.get(f"/models/{HOUSING}/predict/").content.decode()
    churn = user_client.get(PREDICT).content.decode()
    assert 'name="area_m2"' in house and '<option value="heat-pump"' in house and 'name="contract"' not in house
    assert 'name="contract"' in churn and 'name="area_m2"' not in churn


def test_the_form_of_a_model_that_is_not_served_is_a_404_saying_so(user_client, churn_model, unique_model_name):
    response = user_client.get(f"/models/{unique_model_name}/predict/")
    assert response.status_code == 404 and "has no production version" in response.content.decode()


def test_past_predictions_show_only_the_model_of_the_url(user_client, churn_model, housing_model):
    user_client.post(PREDICT, CHURN_FORM)
    house = user_client.get(f"/models/{HOUSING}/predictions/", {"model_version": churn_model.version})
    churn = user_client.get(HISTORY, {"model_version": churn_model.version})
    assert list(house.context["rows"]) == [] and len(churn.context["rows"]) == 1


def test_form_predicts_and_stores_a_web_prediction(user_client, churn_model):
    response = user_client.post(PREDICT, CHURN_FORM)

    stored = Prediction.objects.get()
    assert stored.source == "web" and stored.features["contract"] == "month-to-month"
    page = response.content.decode()
    assert f"stored as prediction #{stored.pk}" in page and f"v{churn_model.version}" in page


def test_form_errors_name_the_field_and_store_nothing(user_client, churn_model):
    response = user_client.post(PREDICT, {**CHURN_FORM, "age": "old", "contract": "lifetime"})

    page = response.content.decode()
    # An unseen category is accepted with a warning (the model's policy), a non-number is not.
    assert "Enter a number." in page and "lifetime is not one of the available choices" not in page
    assert Prediction.objects.count() == 0


def test_past_predictions_filter_paginate_and_export(user_client, churn_model):
    for _ in range(3):
        user_client.post(PREDICT, CHURN_FORM)
    Prediction.objects.filter(pk=Prediction.objects.order_by("id").first().pk).update(source="api")

    page = user_client.get(HISTORY, {"source": "web"}).content.decode()
    export = user_client.get(EXPORT, {"source": "web"})
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))

    assert page.count('<span class="badge">web</span>') == 2 and '<span class="badge">api</span>' not in page
    assert len(rows) == 2 and {r["source"] for r in rows} == {"web"}
    assert "month-to-month" in rows[0]["features"] and rows[0]["model_version"] == str(churn_model.version)


@pytest.mark.parametrize("source", [choice.value for choice in Source])
def test_past_predictions_filter_by_every_source(user_client, churn_model, source):
    """The filter offers every source a row can have, the protocols' included."""
    for _ in range(2):
        user_client.post(PREDICT, CHURN_FORM)
    first, other = Prediction.objects.order_by("id")
    Prediction.objects.filter(pk=first.pk).update(source=source)
    Prediction.objects.filter(pk=other.pk).update(source="api" if source != "api" else "web")

    response = user_client.get(HISTORY, {"source": source})

    assert response.context["form"].is_valid(), response.context["form"].errors
    assert [row.pk for row in response.context["rows"]] == [first.pk]
    assert f'<option value="{source}" selected>{Source(source).label}</option>' in response.content.decode()


def test_keyset_pagination_walks_every_row_once(user_client, churn_model, monkeypatch):
    monkeypatch.setattr("predictions.views.PAGE_ROWS", 2)
    for _ in range(5):
        user_client.post(PREDICT, CHURN_FORM)
    seen, url, pages = [], HISTORY, []
    while url:
        response = user_client.get(url)
        pages.append([row.pk for row in response.context["rows"]])
        seen += pages[-1]
        older = response.context["older_query"]
        url = f"{HISTORY}?{older}" if older else None
    assert seen == list(Prediction.objects.order_by("-created_at", "-id").values_list("pk", flat=True))
    assert [len(page) for page in pages] == [2, 2, 1]
    # And back: "newer" from the last page gives the middle page, then the first.
    newer = response.context["newer_query"]
    middle = user_client.get(f"{HISTORY}?{newer}")
    assert [row.pk for row in middle.context["rows"]] == pages[1]
    first = user_client.get(f"{HISTORY}?{middle.context['newer_query']}")
    assert [row.pk for row in first.context["rows"]] == pages[0] and first.context["newer_query"] is None


def test_pages_need_a_login(client):
    for url in (HISTORY, PREDICT, EXPORT, "/monitoring/"):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith("/accounts/login/")

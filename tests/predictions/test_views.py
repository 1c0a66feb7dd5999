import csv
import io

import pytest

from predictions.models import Prediction

pytestmark = pytest.mark.django_db

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
    page = user_client.get("/predictions/predict/").content.decode()
    assert '<option value="month-to-month"' in page and 'name="monthly_charges"' in page
    assert "training range" in page and f"v{churn_model.version}" in page


def test_form_starts_on_a_typical_row_from_the_profile(user_client, churn_model):
    features = {f["name"]: f for f in churn_model.profile["features"]}
    page = user_client.get("/predictions/predict/").content.decode()

    age_median = round(features["age"]["quantiles"]["0.5"])
    assert f'name="age" value="{age_median}"' in page
    shares = features["contract"]["categories"]
    most_frequent_contract = max(shares, key=shares.get)  # not the first key: jsonb does not keep the order
    assert f'<option value="{most_frequent_contract}" selected>' in page


def test_form_for_another_model_without_code_changes(user_client, housing_model):
    page = user_client.get("/predictions/predict/").content.decode()
    assert 'name="area_m2"' in page and '<option value="heat-pump"' in page and "contract" not in page


def test_form_predicts_and_stores_a_web_prediction(user_client, churn_model):
    response = user_client.post("/predictions/predict/", CHURN_FORM)

    stored = Prediction.objects.get()
    assert stored.source == "web" and stored.features["contract"] == "month-to-month"
    page = response.content.decode()
    assert f"stored as prediction #{stored.pk}" in page and f"v{churn_model.version}" in page


def test_form_errors_name_the_field_and_store_nothing(user_client, churn_model):
    response = user_client.post("/predictions/predict/", {**CHURN_FORM, "age": "old", "contract": "lifetime"})

    page = response.content.decode()
    # An unseen category is accepted with a warning (the model's policy), a non-number is not.
    assert "Enter a number." in page and "lifetime is not one of the available choices" not in page
    assert Prediction.objects.count() == 0


def test_past_predictions_filter_paginate_and_export(user_client, churn_model):
    for _ in range(3):
        user_client.post("/predictions/predict/", CHURN_FORM)
    Prediction.objects.filter(pk=Prediction.objects.order_by("id").first().pk).update(source="api")

    page = user_client.get("/predictions/", {"source": "web"}).content.decode()
    export = user_client.get("/predictions/export.csv", {"source": "web"})
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))

    assert page.count('<span class="badge">web</span>') == 2 and '<span class="badge">api</span>' not in page
    assert len(rows) == 2 and {r["source"] for r in rows} == {"web"}
    assert "month-to-month" in rows[0]["features"] and rows[0]["model_version"] == str(churn_model.version)


def test_keyset_pagination_walks_every_row_once(user_client, churn_model, monkeypatch):
    monkeypatch.setattr("predictions.views.PAGE_ROWS", 2)
    for _ in range(5):
        user_client.post("/predictions/predict/", CHURN_FORM)
    seen, url, pages = [], "/predictions/", []
    while url:
        response = user_client.get(url)
        pages.append([row.pk for row in response.context["rows"]])
        seen += pages[-1]
        older = response.context["older_query"]
        url = f"/predictions/?{older}" if older else None
    assert seen == list(Prediction.objects.order_by("-created_at", "-id").values_list("pk", flat=True))
    assert [len(page) for page in pages] == [2, 2, 1]
    # And back: "newer" from the last page gives the middle page, then the first.
    newer = response.context["newer_query"]
    middle = user_client.get(f"/predictions/?{newer}")
    assert [row.pk for row in middle.context["rows"]] == pages[1]
    first = user_client.get(f"/predictions/?{middle.context['newer_query']}")
    assert [row.pk for row in first.context["rows"]] == pages[0] and first.context["newer_query"] is None


def test_pages_need_a_login(client):
    for url in ("/predictions/", "/predictions/predict/", "/predictions/export.csv"):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith("/accounts/login/")

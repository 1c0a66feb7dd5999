"""Nobody gets more than their role (issue 12.5): API budgets per user and per address, login
lockout, feedback and exports limited to what the user may see, a JSON 413 naming the limit."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.throttles import LEASE_MAX, lease_size
from predictions.models import Prediction
from tests.conftest import CHURN, requires_redis
from tests.predictions.factories import CHURN_ROW

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent
PREDICT = f"/api/v1/models/{CHURN}/predict/"


def _token_client(user) -> APIClient:
    return APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.com", "pw-bob-123")


# --- Budgets -------------------------------------------------------------------------------------


@pytest.fixture
def small_budgets(settings):
    # Per day: counts are kept per fixed window, and a minute's would roll over mid-test.
    settings.MLAPP_THROTTLE_RATES = {"anon": "2/day", "user": "5/day", "predict": "3/day"}


def _until_refused(call, at_most=20) -> tuple[int, object]:
    for answered in range(at_most):
        response = call()
        if response.status_code == 429:
            return answered, response
    return at_most, None


def test_a_token_is_refused_past_its_budget_with_retry_after(small_budgets, plain_user, bob, churn_model):
    alice = _token_client(plain_user)
    answered, refused = _until_refused(lambda: alice.get("/api/v1/models/"))

    assert answered == 5
    assert 1 <= int(refused["Retry-After"]) <= 86400  # when the window ends
    assert refused.json()["detail"].startswith("Request was throttled.")
    # The budget is the user's, whichever way they authenticate; another user has their own.
    session = APIClient()
    session.force_authenticate(plain_user)
    assert session.get("/api/v1/models/").status_code == 429
    assert _token_client(bob).get("/api/v1/models/").status_code == 200


def test_scoring_spends_a_budget_of_its_own(small_budgets, plain_user, churn_model):
    alice = _token_client(plain_user)
    answered, refused = _until_refused(lambda: alice.post(PREDICT, {"features": CHURN_ROW}, format="json"))

    assert answered == 3 and refused is not None
    assert Prediction.objects.count() == 3  # a refused request stores nothing
    assert alice.get("/api/v1/models/").status_code == 200  # the user budget is untouched


def test_anonymous_calls_are_counted_per_address_and_health_never(small_budgets, churn_model):
    """What anonymous callers may reach (the schema; everything else is a 401 first) has a budget per address."""
    anonymous = APIClient(REMOTE_ADDR="203.0.113.7")
    answered, refused = _until_refused(lambda: anonymous.get("/api/v1/schema/"))

    assert answered == 2 and refused is not None
    assert APIClient(REMOTE_ADDR="203.0.113.8").get("/api/v1/schema/").status_code == 200
    assert all(anonymous.get("/api/v1/health/").status_code == 200 for _ in range(5))


def test_none_lifts_a_budget(settings, plain_user, churn_model):
    settings.MLAPP_THROTTLE_RATES = {"anon": "1/day", "user": "none", "predict": "1/day"}
    alice = _token_client(plain_user)
    assert all(alice.get("/api/v1/models/").status_code == 200 for _ in range(10))


THROTTLE_IN_A_PROCESS = """
import django, sys
django.setup()
from django.conf import settings
from django.test import RequestFactory
from rest_framework.request import Request
from core.throttles import UserThrottle

class User:
    pk, is_authenticated = sys.argv[1], True

settings.MLAPP_THROTTLE_RATES = {"user": sys.argv[2]}
request = Request(RequestFactory().get("/api/v1/models/"))
request.user = User()
print(sum(UserThrottle().allow_request(request, view=None) for _ in range(int(sys.argv[3]))))
"""


def _two_processes(env_overrides: dict, rate: str = "10/day", requests: int = 6) -> list[int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLAPP_", "CELERY_", "CACHE_"))}
    env.update({"DJANGO_SETTINGS_MODULE": "mlapp.settings", "DEBUG": "1", **env_overrides})
    user = uuid.uuid4().hex  # a user no other run counted
    return [
        int(
            subprocess.run(
                [sys.executable, "-c", THROTTLE_IN_A_PROCESS, user, rate, str(requests)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(2)
    ]


def test_every_process_spends_the_same_budget_on_the_embedded_cache(tmp_path):
    """Two gunicorn workers are two processes: a budget of 10 allows 10 across both, not 20."""
    assert _two_processes({"MLAPP_VAR_DIR": str(tmp_path)}) == [6, 4]


@requires_redis
def test_every_process_spends_the_same_budget_on_redis(tmp_path):
    """With Redis as the broker, the throttle counts live there too (no CACHE_URL needed)."""
    redis_url = os.environ["MLAPP_TEST_REDIS_URL"]
    assert _two_processes({"MLAPP_VAR_DIR": str(tmp_path), "CELERY_BROKER_URL": redis_url}) == [6, 4]


@pytest.mark.parametrize("backend", ["embedded", pytest.param("redis", marks=requires_redis)])
def test_leased_counts_still_add_up_across_processes(tmp_path, backend):
    """At 3,200/day a process takes 16 numbers per round trip (core/throttles.py): the first process
    spends 2,000 (125 leases, all handed out), the second gets the 1,200 left and is refused 800."""
    env = {"MLAPP_VAR_DIR": str(tmp_path)}
    if backend == "redis":
        env["CELERY_BROKER_URL"] = os.environ["MLAPP_TEST_REDIS_URL"]
    assert _two_processes(env, rate="3200/day", requests=2000) == [2000, 1200]


def test_a_process_takes_a_lease_of_at_most_one_percent_of_the_budget():
    assert [lease_size(n) for n in (1, 60, 199, 200, 1200, 10**7)] == [1, 1, 1, 2, 12, LEASE_MAX]


# --- Login lockout -------------------------------------------------------------------------------


@pytest.mark.parametrize("login_url", ["/accounts/login/", "/admin/login/"])
def test_repeated_wrong_passwords_lock_the_login_with_a_clear_message(client, staff_user, settings, login_url):
    settings.AXES_FAILURE_LIMIT = 5
    for _ in range(4):
        wrong = client.post(login_url, {"username": "staff", "password": "guess"})
        assert wrong.status_code == 200  # the form again, saying the password did not match
    fifth = client.post(login_url, {"username": "staff", "password": "guess"})
    locked = client.post(login_url, {"username": "staff", "password": "pw-staff-123"})  # even the right one

    assert fifth.status_code == 429
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Login locked" in page and "Too many failed logins for <strong>staff</strong>" in page
    assert "5 wrong passwords in a row" in page and "locked for 15 minutes" in page
    assert "_auth_user_id" not in client.session
    # Another address is not locked out of the same account (username + address, the default).
    elsewhere = client.post(login_url, {"username": "staff", "password": "pw-staff-123"}, REMOTE_ADDR="198.51.100.4")
    assert elsewhere.status_code == 302


def test_a_successful_login_resets_the_count(client, plain_user):
    for _ in range(4):
        client.post("/accounts/login/", {"username": "alice", "password": "guess"})
    assert client.post("/accounts/login/", {"username": "alice", "password": "pw-alice-123"}).status_code == 302
    client.logout()
    for _ in range(4):
        client.post("/accounts/login/", {"username": "alice", "password": "guess"})
    assert client.post("/accounts/login/", {"username": "alice", "password": "pw-alice-123"}).status_code == 302


# --- Feedback and exports follow who made the prediction -----------------------------------------


def _predict(client) -> int:
    response = client.post(PREDICT, {"features": CHURN_ROW}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["predictions"][0]["id"]


@pytest.fixture
def scheduled_prediction(churn_model):
    return Prediction.objects.create(
        created_at=timezone.now(),
        model_name=churn_model.name,
        model_version=churn_model.version,
        run_id=churn_model.run_id,
        source="scheduled",
        request_id="scheduled:1",
        features=CHURN_ROW,
        predicted_label="no",
    )


def _feedback(client, prediction_id):
    return client.post(f"/api/v1/predictions/{prediction_id}/feedback/", {"actual": "yes"}, format="json")


def test_feedback_only_by_its_maker_staff_or_the_permission(plain_user, bob, staff_user, churn_model):
    alice, bobs = _token_client(plain_user), _token_client(bob)
    mine = _predict(alice)

    refused = _feedback(bobs, mine)
    assert refused.status_code == 404 and refused.json() == {"detail": f"No prediction {mine}"}  # not even seen
    assert Prediction.objects.get(pk=mine).feedback_at is None
    assert _feedback(alice, mine).status_code == 200
    assert _feedback(_token_client(staff_user), mine).status_code == 200
    bob.user_permissions.add(Permission.objects.get(codename="change_prediction"))
    assert _feedback(_token_client(bob), mine).status_code == 200


def test_feedback_on_scheduled_predictions_is_for_staff_and_the_permission(
    plain_user, staff_user, scheduled_prediction
):
    refused = _feedback(_token_client(plain_user), scheduled_prediction.pk)

    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        f"Feedback on prediction {scheduled_prediction.pk} is for the user who made it, staff, "
        "or holders of the predictions.change_prediction permission"
    )
    scheduled_prediction.refresh_from_db()
    assert scheduled_prediction.feedback_at is None
    assert _feedback(_token_client(staff_user), scheduled_prediction.pk).status_code == 200


def test_lists_and_exports_show_a_user_their_own_and_the_scheduled_predictions(
    plain_user, bob, staff_user, scheduled_prediction, client
):
    alice, bobs = _token_client(plain_user), _token_client(bob)
    mine, theirs = _predict(alice), _predict(bobs)
    legacy = Prediction.objects.create(  # before makers were recorded: staff only
        **{f: getattr(scheduled_prediction, f) for f in ("created_at", "model_name", "model_version", "run_id")},
        source="api",
        request_id="old",
        features=CHURN_ROW,
        predicted_label="no",
    )

    def listed(api, url="/api/v1/predictions/"):
        return {row["id"] for row in api.get(url).json()["results"]}

    def exported(user):
        client.force_login(user)
        body = b"".join(client.get(f"/models/{CHURN}/predictions/export.csv").streaming_content).decode()
        return {int(line.split(",")[0]) for line in body.splitlines()[1:]}

    everything = {mine, theirs, scheduled_prediction.pk, legacy.pk}
    assert listed(alice) == listed(alice, f"/api/v1/models/{CHURN}/predictions/") == {mine, scheduled_prediction.pk}
    assert listed(bobs) == exported(bob) == {theirs, scheduled_prediction.pk}
    assert listed(_token_client(staff_user)) == exported(staff_user) == everything
    client.force_login(plain_user)
    page = client.get(f"/models/{CHURN}/predictions/").content.decode()
    assert f'"small">{mine}<' in page
    assert f'"small">{theirs}<' not in page and f'"small">{legacy.pk}<' not in page
    # An analyst granted view_prediction in the admin sees every prediction, but gives no feedback on others'.
    bob.user_permissions.add(Permission.objects.get(codename="view_prediction"))
    assert listed(_token_client(bob)) == everything
    assert _feedback(_token_client(bob), mine).status_code == 403


def test_a_batch_jobs_rows_belong_to_whoever_uploaded_it(plain_user, bob, churn_model):
    from predictions.models import BatchJob  # noqa: PLC0415

    job = BatchJob.objects.create(model_name=CHURN, input_path="x.csv", original_filename="x.csv", created_by=bob)
    row = Prediction.objects.create(
        created_at=timezone.now(),
        model_name=CHURN,
        model_version=churn_model.version,
        run_id=churn_model.run_id,
        source="batch",
        request_id=f"batch:{job.pk}",
        features=CHURN_ROW,
        predicted_label="no",
        batch_job=job,
        row_number=1,
    )
    assert _feedback(_token_client(plain_user), row.pk).status_code == 404
    assert _feedback(_token_client(bob), row.pk).status_code == 200


# --- Oversized bodies ----------------------------------------------------------------------------


@pytest.fixture
def one_mib_limit(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2**20


def test_an_oversized_api_body_is_a_json_413_naming_the_limit(one_mib_limit, plain_user, churn_model):
    body = json.dumps({"rows": [CHURN_ROW] * 6000})
    assert len(body) > 2**20

    response = _token_client(plain_user).post(PREDICT, data=body, content_type="application/json")

    assert response.status_code == 413
    detail = response.json()["detail"]
    assert detail.startswith(f"Request body too large ({len(body) / 2**20:.1f} MiB): the limit is 1 MiB")
    assert "MLAPP_MAX_BODY_MB" in detail and "nothing was stored" in detail
    assert Prediction.objects.count() == 0


def test_oversized_form_fields_on_the_api_are_a_json_413(one_mib_limit, staff_user, churn_model):
    big_field = {"reason": "y" * (2**20 + 10)}
    response = _token_client(staff_user).post(f"/api/v1/models/{CHURN}/rollback/", big_field, format="multipart")

    assert response.status_code == 413 and "the limit is 1 MiB" in response.json()["detail"]


def test_an_oversized_page_post_gets_a_friendly_413_page(one_mib_limit, user_client, churn_model):
    response = user_client.post(
        f"/models/{CHURN}/predict/", data="age=" + "4" * (2**20 + 10), content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 413 and response["Content-Type"].startswith("text/html")
    assert "Request too large" in response.content.decode() and "1 MiB" in response.content.decode()


def test_an_uploaded_file_past_the_body_limit_is_still_accepted(one_mib_limit, user_client, churn_model, tmp_path):
    csv = tmp_path / "big.csv"
    header = ",".join(CHURN_ROW)
    line = ",".join(str(v) for v in CHURN_ROW.values())
    csv.write_text(header + "\n" + "\n".join([line] * 25_000) + "\n")
    assert csv.stat().st_size > 2**20

    with csv.open("rb") as upload:
        response = user_client.post(f"/models/{CHURN}/batch/", {"csv_file": upload})

    assert response.status_code == 302 and "/predictions/batch/" in response["Location"]

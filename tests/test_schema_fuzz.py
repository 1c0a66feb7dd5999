"""Schemathesis against our own OpenAPI schema (issue 12.7): every operation the schema lists,
authenticated as staff, through the WSGI app; no 5xx and no answer the schema does not describe.

Operations come from the schema itself, so an endpoint added anywhere is fuzzed once it is in
the schema: the REST API and the protocols' (MLflow's under /serving/, V2 under /v2), each in its
own error shapes and content types. Every check runs but `positive_data_acceptance` ("schema-valid input must get a
2xx"): our business rules (the model exists, `since` before `until`, a label the model knows,
a version to roll back to) are 400/404/409 answers that OpenAPI cannot state; those answers are
documented, and their shape is checked like any other.
Bounded: MLAPP_FUZZ_EXAMPLES generated cases per operation (default 20); every failure of
every operation is collected, then listed, rather than stopping at the first.
"""

import os
from contextlib import contextmanager

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from rest_framework.authtoken.models import Token
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import positive_data_acceptance

from mlapp.wsgi import application
from tests.predictions.factories import CHURN_ROW

EXAMPLES = int(os.environ.get("MLAPP_FUZZ_EXAMPLES", "20"))
pytestmark = pytest.mark.django_db


def _failures(exc: BaseException) -> list[str]:
    if isinstance(exc, FailureGroup):
        return [line for inner in exc.exceptions for line in _failures(inner)]
    if isinstance(exc, Failure):
        return [f"{exc.title}: {exc.message}".splitlines()[0][:300]]
    return [f"{type(exc).__name__}: {exc}"[:300]]


def _fuzz(operation, headers: dict, problems: dict[str, set[str]], model_name: str) -> int:
    """Up to EXAMPLES cases of one operation; returns how many requests were sent. A case naming a model is
    sent once more naming the test's model, so the answers past "no such model" are checked too."""
    sent = 0

    @hypothesis.given(case=operation.as_strategy())
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def fuzz(case):
        nonlocal sent
        names_a_model = "model_name" in (case.path_parameters or {})
        for attempt in range(2 if names_a_model else 1):
            if attempt:
                case.path_parameters["model_name"] = model_name
            sent += 1
            try:
                case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])
            except (Failure, FailureGroup) as exc:
                problems.setdefault(operation.label, set()).update(_failures(exc))

    fuzz()
    return sent


@contextmanager
def _connection_kept_open():
    """As Django's test client does (and undoes after each of its own requests): the app must not
    close the test's database connection at the end of a request."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def test_every_operation_answers_as_its_schema_says(churn_model, staff_user, client):
    token = Token.objects.create(user=staff_user)
    headers = {"Authorization": f"Token {token.key}"}
    client.force_login(staff_user)
    # Something to find: a prediction, so feedback and list operations reach their code.
    client.post(f"/api/v1/models/{churn_model.name}/predict/", {"features": CHURN_ROW}, content_type="application/json")
    problems: dict[str, set[str]] = {}
    with _connection_kept_open():
        schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 20  # the schema lists the API, not nothing
        sent = sum(_fuzz(operation, headers, problems, churn_model.name) for operation in operations)

    report = "\n".join(f"{label}\n  " + "\n  ".join(sorted(found)) for label, found in sorted(problems.items()))
    print(f"schemathesis: {len(operations)} operations, {sent} requests, "
          f"{sum(map(len, problems.values()))} distinct problems")  # fmt: skip
    assert not problems, report

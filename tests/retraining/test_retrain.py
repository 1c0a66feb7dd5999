"""Retraining passes on real stores: data, snapshot, champion vs challenger, the policy's decision."""

from datetime import timedelta

import pandas as pd
import pytest
from django.utils import timezone

from models_registry import services
from models_registry.challenger import Measured, PromotionPolicy, promotion_decide
from models_registry.demo_data import churn_frame
from models_registry.models import AliasChange, ModelVersion, TrainingJob, TrainingSnapshot
from models_registry.selectors import served_version_get
from models_registry.snapshots import frame_csv_buffer, training_snapshot_read
from models_registry.training import frame_sha256, model_train, training_data_prepare
from monitoring.models import DriftReport
from predictions.models import Prediction
from retraining.models import RetrainJob, RetrainPolicy
from retraining.services.runs import retrain_job_request, retrain_job_run, retrain_on_drift

FEATURES = [
    "age",
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "support_calls",
    "contract",
    "internet_service",
    "payment_method",
    "region",
]


@pytest.fixture
def served(mlflow_store, db, unique_model_name, tmp_path):
    """A fresh model in production, trained from a CSV the training page kept (its base data)."""
    path = tmp_path / "churn.csv"
    churn_frame(n_rows=800, seed=1).to_csv(path, index=False)
    result = model_train(csv=path, target="churned", name=unique_model_name, actor_label="tests")
    TrainingJob.objects.create(
        model_name=unique_model_name,
        csv_path=str(path),
        original_filename="churn.csv",
        target="churned",
        status=TrainingJob.Status.SUCCEEDED,
        model_version=result.model_version,
    )
    services.alias_move(name=unique_model_name, version=result.model_version.version, reason="tests")
    return result.model_version


def _feedback(record, *, n, seed, drift=0.0, flip=False):
    frame = churn_frame(n_rows=n, seed=seed, drift=drift)
    labels = frame["churned"].map({"yes": "no", "no": "yes"}) if flip else frame["churned"]
    now = timezone.now()
    Prediction.objects.bulk_create(
        Prediction(
            created_at=now,
            model_name=record.name,
            model_version=record.version,
            run_id=record.run_id,
            source="api",
            request_id=f"t{seed}-{i}",
            features={k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()},
            predicted_label="no",
            actual_label=label,
            feedback_at=now + timedelta(seconds=1),
        )
        for i, (row, label) in enumerate(zip(frame[FEATURES].to_dict("records"), labels, strict=True))
    )


def _retrain(name):
    job = retrain_job_request(model_name=name, trigger=RetrainJob.Trigger.MANUAL, enqueue=False)
    return retrain_job_run(job_id=job.pk)


def _versions(name):
    return ModelVersion.objects.filter(name=name).count()


def test_no_new_labels_no_new_version_and_twice_with_the_same_labels_none_either(served):
    first = _retrain(served.name)
    assert first.status == RetrainJob.Status.SUCCEEDED, first.error
    assert first.outcome == RetrainJob.Outcome.NO_NEW_DATA and "no new version" in first.outcome_text
    assert _versions(served.name) == 1

    RetrainPolicy.objects.create(model_name=served.name, primary_margin=10.0)  # never better enough: kept
    _feedback(served, n=300, seed=5)
    second = _retrain(served.name)
    assert second.outcome == RetrainJob.Outcome.KEPT, second.outcome_text
    assert _versions(served.name) == 2
    third = _retrain(served.name)  # the same labels again
    assert third.outcome == RetrainJob.Outcome.REUSED, third.outcome_text
    assert _versions(served.name) == 2


def test_snapshot_hash_matches_the_rows_trained_on(served):
    RetrainPolicy.objects.create(model_name=served.name, primary_margin=10.0)
    _feedback(served, n=300, seed=6)
    job = _retrain(served.name)
    snapshot = TrainingSnapshot.objects.get(model_version=job.model_version)
    rows = training_snapshot_read(snapshot)  # from the MLflow artifact, hash checked
    assert frame_sha256(rows) == snapshot.sha256
    assert snapshot.n_rows == len(rows) == job.model_version.n_train_rows + job.model_version.n_test_rows
    assert sum(snapshot.rows_by_source.values()) == snapshot.n_rows and snapshot.rows_by_source["feedback"] > 0
    # What the trainer read from these rows is what the version records having trained on.
    data = training_data_prepare(csv=frame_csv_buffer(rows), target="churned", task=None, source_name="s.csv")
    trained = frame_sha256(pd.concat([data.features, data.target.rename("churned")], axis=1))
    assert trained == job.model_version.params["data_sha256"]


def test_a_better_challenger_is_promoted_through_the_staff_path(served):
    RetrainPolicy.objects.create(model_name=served.name, min_eval_rows=150)
    _feedback(served, n=1500, seed=7, drift=1.0)  # concept drift: the south churns
    job = _retrain(served.name)
    assert job.outcome == RetrainJob.Outcome.PROMOTED, job.outcome_text
    evaluation = job.evaluation
    assert evaluation.eval_data == "recent" and evaluation.eval_rows >= 150
    assert served_version_get(name=served.name) == job.model_version.version
    change = AliasChange.objects.filter(model_name=served.name, alias="production").first()
    assert change.action == AliasChange.Action.AUTO_PROMOTE and change.actor_label == "retrain-policy"
    assert served_version_get(name=served.name, alias="challenger") == job.model_version.version


def test_a_worse_challenger_is_not_promoted(served):
    # Few enough new rows that both are judged on production's own test split; labels flipped.
    RetrainPolicy.objects.create(model_name=served.name, min_eval_rows=5000)
    _feedback(served, n=2500, seed=8, flip=True)
    job = _retrain(served.name)
    assert job.outcome == RetrainJob.Outcome.KEPT, job.outcome_text
    assert job.evaluation.eval_data == "test_split"
    assert not job.evaluation.promoted and "primary metric" in job.evaluation.summary
    assert served_version_get(name=served.name) == served.version


@pytest.mark.parametrize(
    ("bounds", "failing"),
    [({"size_max_ratio": 0.5}, "loaded size"), ({"latency_p99_max_ratio": 0.01, "latency_slack_ms": 0.0}, "latency")],
)
def test_a_challenger_beyond_the_size_or_latency_bound_is_not_promoted(served, bounds, failing):
    RetrainPolicy.objects.create(model_name=served.name, min_eval_rows=150, **bounds)
    _feedback(served, n=1500, seed=9, drift=1.0)
    job = _retrain(served.name)
    assert job.outcome == RetrainJob.Outcome.KEPT, job.outcome_text
    failed = [c["check"] for c in job.evaluation.checks if not c["passed"]]
    assert any(failing in name for name in failed), job.evaluation.checks
    assert served_version_get(name=served.name) == served.version


def test_a_challenger_that_cannot_load_is_never_promoted(served, tmp_path):
    from models_registry.challenger import challenger_evaluate  # noqa: PLC0415

    path = tmp_path / "other.csv"
    churn_frame(n_rows=800, seed=3).to_csv(path, index=False)
    other = model_train(csv=path, target="churned", name=served.name, actor_label="tests").model_version
    from mlflow.artifacts import download_artifacts  # noqa: PLC0415

    folder = download_artifacts(artifact_uri=f"models:/{served.name}/{other.version}")
    from pathlib import Path  # noqa: PLC0415

    for file in Path(folder).rglob("*"):
        if file.is_file() and file.name != "MLmodel":
            file.write_bytes(b"corrupted")
    from models_registry.serving import loader  # noqa: PLC0415

    loader().invalidate(served.name)
    evaluation = challenger_evaluate(
        name=served.name,
        production_version=served.version,
        challenger_version=other.version,
        rows=churn_frame(n_rows=50, seed=4),
        target="churned",
        eval_data="recent",
        eval_note="tests",
        policy=PromotionPolicy(),
    )
    assert not evaluation.checks[0]["passed"], evaluation.checks
    assert evaluation.decision == "keep" and not evaluation.promoted
    assert served_version_get(name=served.name) == served.version


def test_the_policy_refuses_worse_slower_and_larger():
    policy = PromotionPolicy()
    production = Measured(1, {"roc_auc": 0.80, "accuracy": 0.80, "f1": 0.5}, 2.0, 1_000_000)
    better = {"roc_auc": 0.85, "accuracy": 0.81, "f1": 0.52}
    assert promotion_decide(
        task="classification", policy=policy, production=production, challenger=Measured(2, better, 2.0, 1_000_000)
    )[0]
    for challenger in (
        Measured(2, {**better, "roc_auc": 0.79}, 2.0, 1_000_000),  # worse
        Measured(2, {**better, "accuracy": 0.70}, 2.0, 1_000_000),  # a guard lost too much
        Measured(2, better, 9.0, 1_000_000),  # slower than 1.5 x + 1 ms
        Measured(2, better, 2.0, 5_000_000),  # larger than 2 x
    ):
        assert not promotion_decide(task="classification", policy=policy, production=production, challenger=challenger)[
            0
        ]


def test_drift_trigger_retrains_once_per_min_interval(served):
    RetrainPolicy.objects.create(model_name=served.name, drift_trigger=True, drift_min_interval_minutes=60)

    def report(drift):
        return DriftReport.objects.create(
            model_name=served.name, model_version=served.version, dataset_drift=drift, scheduled=True
        )

    assert retrain_on_drift(report_id=report(False).pk) is None
    hand_run = DriftReport.objects.create(model_name=served.name, model_version=served.version, dataset_drift=True)
    assert retrain_on_drift(report_id=hand_run.pk) is None  # hand-run checks never trigger
    job = retrain_on_drift(report_id=report(True).pk)
    assert job is not None and job.trigger == RetrainJob.Trigger.DRIFT
    RetrainJob.objects.filter(pk=job.pk).update(status=RetrainJob.Status.SUCCEEDED)
    assert retrain_on_drift(report_id=report(True).pk) is None  # within the minimum interval
    RetrainJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=61))
    assert retrain_on_drift(report_id=report(True).pk) is not None

"""Ingestion end to end: raw/ → good/ + bad/, the IngestedFile record, issues, alerts, hand-over."""

import os
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from models_registry.demo_data import churn_frame
from monitoring.models import Alert, DataQualityIssue, IngestedFile, IngestionRun
from monitoring.services.demo_stream import DemoStreamConfig, demo_stream_file_write
from monitoring.services.ingestion import ingestion_run_execute
from predictions.models import GoodFile
from tests.conftest import requires_postgres


@pytest.fixture
def folders(settings, tmp_path):
    settings.MLAPP_DATA_DIR = tmp_path
    settings.MLAPP_INGEST_MIN_AGE_SECONDS = 0
    raw = tmp_path / "raw"
    raw.mkdir()
    return tmp_path


def _raw(folders, name, content: bytes | str, age_seconds=60):
    path = folders / "raw" / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    old = time.time() - age_seconds
    os.utime(path, (old, old))
    return path


def _csv(n_rows=50, seed=0, changes=None):
    frame = churn_frame(n_rows=n_rows, seed=seed).drop(columns=["churned"]).astype(object)
    for (row, column), value in (changes or {}).items():
        frame.loc[row, column] = value
    return frame.to_csv(index=False)


def _accounted(ingested: IngestedFile):
    assert ingested.rows_in == ingested.rows_good + ingested.rows_bad
    if ingested.good_path:
        assert len(Path(ingested.good_path).read_text().splitlines()) - 1 == ingested.rows_good


@pytest.mark.django_db
def test_a_file_is_split_recorded_handed_over_and_archived(folders, churn_model):
    _raw(folders, "day1.csv", _csv(n_rows=50, changes={(3, "age"): "old", (7, "contract"): "lifetime"}))

    run = ingestion_run_execute()

    ingested = IngestedFile.objects.get()
    assert (run.files_seen, run.files_processed) == (1, 1)
    assert (ingested.status, ingested.rows_in, ingested.rows_good, ingested.rows_bad) == ("done", 50, 48, 2)
    assert ingested.model_version == churn_model.version
    _accounted(ingested)
    rules = set(DataQualityIssue.objects.values_list("rule", "column"))
    assert rules == {("wrong_type", "age"), ("unknown_category", "contract")}
    assert GoodFile.objects.get().rows == 48 and GoodFile.objects.get().path == ingested.good_path
    assert not (folders / "raw" / "day1.csv").exists() and os.path.exists(ingested.archived_path)
    bad = Path(ingested.bad_path).read_text()
    assert "wrong_type:age=old" in bad and "unknown_category:contract=lifetime" in bad


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"age,contract\n", "missing required column(s)"),
        ("header only", "header only"),
        ("latin-1", "not UTF-8"),
        ("utf-16", "UTF-16"),
    ],
)
def test_unreadable_files_are_quarantined_whole_with_an_alert(folders, churn_model, content, reason):
    header = _csv(n_rows=3).splitlines()[0]
    if content == "header only":
        content = header + "\n"
    elif content == "latin-1":
        content = _csv(n_rows=3).replace("north", "nörth").encode("latin-1")
    elif content == "utf-16":
        content = _csv(n_rows=3).encode("utf-16")
    _raw(folders, "broken.csv", content)

    ingestion_run_execute()

    ingested = IngestedFile.objects.get()
    assert ingested.status == "quarantined" and reason in ingested.reason
    assert ingested.rows_good == 0 and ingested.rows_bad == ingested.rows_in
    assert os.path.exists(ingested.bad_path) and not GoodFile.objects.exists()
    alert = Alert.objects.get()
    assert alert.severity == "error" and "quarantined" in alert.title


@pytest.mark.django_db
def test_a_bad_share_over_the_threshold_raises_one_alert(folders, churn_model, settings):
    settings.MLAPP_ALERT_BAD_SHARE = 0.1
    changes = {(i, "region"): "atlantis" for i in range(10)}
    _raw(folders, "dirty.csv", _csv(n_rows=40, changes=changes))

    ingestion_run_execute()
    ingestion_run_execute()

    alert = Alert.objects.get()
    assert alert.title == "25% bad rows in dirty.csv" and alert.ingested_file.rows_bad == 10


@pytest.mark.django_db
def test_files_still_being_written_wait(folders, churn_model):
    _raw(folders, "coming.csv.part", _csv(n_rows=5))
    _raw(folders, "fresh.csv", _csv(n_rows=5), age_seconds=0)

    run = ingestion_run_execute(min_age_seconds=30)

    assert run.files_seen == 0 and not IngestedFile.objects.exists()
    assert (folders / "raw" / "fresh.csv").exists()


@pytest.mark.django_db
def test_the_same_content_under_another_name_is_ingested_once(folders, churn_model):
    content = _csv(n_rows=20, seed=3)
    _raw(folders, "a.csv", content)
    ingestion_run_execute()
    _raw(folders, "a-copy.csv", content)

    run = ingestion_run_execute()

    assert IngestedFile.objects.count() == 1 and run.files_processed == 0
    assert not (folders / "raw" / "a-copy.csv").exists()
    assert list((folders / "archive").glob("duplicate-*-a-copy.csv"))


@pytest.mark.django_db
def test_a_crash_leaves_the_file_retryable(folders, churn_model, monkeypatch):
    _raw(folders, "retry.csv", _csv(n_rows=10))

    def boom(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("monitoring.services.ingestion.file_validate_and_split", boom)
    first = ingestion_run_execute()
    ingested = IngestedFile.objects.get()
    assert ingested.status == "failed" and "disk full" in first.error
    assert (folders / "raw" / "retry.csv").exists() and not list((folders / "good").glob("*"))
    monkeypatch.undo()

    ingestion_run_execute()

    ingested.refresh_from_db()
    assert ingested.status == "done" and ingested.rows_good == 10


@pytest.mark.django_db
def test_no_model_in_production_leaves_files_in_raw(folders, settings, mlflow_store):
    settings.MLAPP_MODEL_NAME = "nothing-served"
    _raw(folders, "wait.csv", _csv(n_rows=5))

    run = ingestion_run_execute()

    assert "no model in production" in run.error and (folders / "raw" / "wait.csv").exists()


@pytest.mark.django_db
def test_demo_stream_files_go_through_with_their_faults(folders, churn_model):
    config = DemoStreamConfig(dataset="churn", rows=200, fault_share=0.05)
    demo_stream_file_write(config=config, raw_dir=folders / "raw", seed=1)
    demo_stream_file_write(config=config, raw_dir=folders / "raw", seed=2, incident="utf16")
    for path in (folders / "raw").iterdir():
        os.utime(path, (time.time() - 60, time.time() - 60))

    ingestion_run_execute()

    files = {f.status: f for f in IngestedFile.objects.all()}
    assert files["done"].rows_bad > 0 and files["done"].rows_good > 150
    assert files["quarantined"].rows_in == 200
    for ingested in files.values():
        _accounted(ingested)


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_overlapping_runs_process_each_file_once(folders, churn_model):
    for i in range(5):
        _raw(folders, f"batch-{i}.csv", _csv(n_rows=200, seed=10 + i, changes={(0, "age"): "x"}))
    barrier = threading.Barrier(2)
    failures = []

    def run():
        try:
            barrier.wait()
            ingestion_run_execute()
        except Exception as exc:  # surfaced below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not failures
    files = IngestedFile.objects.all()
    assert len(files) == 5 and {f.status for f in files} == {"done"}
    assert sum(f.rows_in for f in files) == 1000 and all(f.rows_bad >= 1 for f in files)  # row 1 of each is bad
    assert len({f.run_id for f in files}) <= 2 and sum(r.files_processed for r in IngestionRun.objects.all()) == 5
    assert GoodFile.objects.count() == 5 and not list((folders / "raw").iterdir())
    for ingested in files:
        _accounted(ingested)

"""Ingestion end to end: raw/ → good/ + bad/ + archive/, the IngestedFile record, issues, alerts, hand-over.

Every test checks the accounting invariant twice: on the stored row
(rows_in == rows_good + rows_bad) and on disk (the good and bad files hold
exactly the rows 1..rows_in, each once).
"""

import hashlib
import io
import os
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from models_registry.demo_data import churn_frame
from monitoring.models import Alert, DataQualityIssue, IngestedFile, IngestionRun
from monitoring.services.demo_stream import DemoStreamConfig, demo_stream_file_write
from monitoring.services.ingestion import IngestionConfig, ingestion_run_execute
from monitoring.tasks import ingest_raw_files_task
from predictions.models import GoodFile
from tests.conftest import CHURN, requires_postgres


class ModelFolders:
    """``folders / "raw"`` is the churn model's raw folder (data/raw/test-churn/), and so on."""

    def __init__(self, root: Path, model_name: str):
        self.root, self.model_name = root, model_name

    def __truediv__(self, name: str) -> Path:
        return self.root / name / self.model_name


@pytest.fixture
def folders(settings, tmp_path):
    settings.MLAPP_DATA_DIR = tmp_path
    settings.MLAPP_INGEST_MIN_AGE_SECONDS = 0
    (tmp_path / "raw" / CHURN).mkdir(parents=True)
    return ModelFolders(tmp_path, CHURN)


def _raw(folders, name, content: bytes | str, age_seconds=60):
    path = folders / "raw" / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    old = time.time() - age_seconds
    os.utime(path, (old, old))
    return path


def _csv(n_rows=50, seed=0, changes=None):
    """Demo churn rows without the target; ``changes`` maps (row index, column) to a value."""
    frame = churn_frame(n_rows=n_rows, seed=seed).drop(columns=["churned"]).astype(object)
    for (row, column), value in (changes or {}).items():
        frame.loc[row, column] = value
    return frame.to_csv(index=False)


def _stem(name: str, content: bytes | str) -> str:
    data = content.encode() if isinstance(content, str) else content
    return f"{Path(name).stem}-{hashlib.sha256(data).hexdigest()[:10]}"


def _rows_on_disk(path: str) -> pd.DataFrame:
    if not path:
        return pd.DataFrame(columns=["row_number"])
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _accounted(ingested: IngestedFile):
    """The stored counts add up, and the files on disk hold each raw row exactly once."""
    ingested.refresh_from_db()
    assert ingested.status in ("done", "quarantined")
    assert ingested.rows_in == ingested.rows_good + ingested.rows_bad
    if ingested.status == "quarantined":
        assert ingested.rows_good == 0 and not ingested.good_path
        assert Path(ingested.bad_path).is_file()  # the original, kept whole in bad/
        return
    good, bad = _rows_on_disk(ingested.good_path), _rows_on_disk(ingested.bad_path)
    assert (len(good), len(bad)) == (ingested.rows_good, ingested.rows_bad)
    numbers = [int(n) for n in [*good["row_number"], *bad["row_number"]]]
    assert sorted(numbers) == list(range(1, ingested.rows_in + 1))
    if len(bad):
        assert (bad["reason"] != "").all()
    assert Path(ingested.archived_path).is_file()


def _left_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# --- the normal path ----------------------------------------------------------------


@pytest.mark.django_db
def test_a_file_is_split_recorded_handed_over_and_archived(folders, churn_model):
    _raw(folders, "day1.csv", _csv(n_rows=50, changes={(3, "age"): "old", (7, "contract"): "lifetime"}))

    run = ingestion_run_execute(model_name=CHURN)

    ingested = IngestedFile.objects.get()
    assert (run.files_seen, run.files_processed, run.error) == (1, 1, "")
    assert (ingested.status, ingested.rows_in, ingested.rows_good, ingested.rows_bad) == ("done", 50, 48, 2)
    assert ingested.model_name == churn_model.name and ingested.model_version == churn_model.version
    _accounted(ingested)
    rules = set(DataQualityIssue.objects.values_list("rule", "column"))
    assert rules == {("wrong_type", "age"), ("unknown_category", "contract")}
    assert DataQualityIssue.objects.get(rule="wrong_type").sample_values == ["old"]
    good_file = GoodFile.objects.get()
    assert (good_file.rows, good_file.path, good_file.sha256) == (48, ingested.good_path, ingested.sha256)
    assert _left_in(folders / "raw") == [] and Path(ingested.archived_path).read_text() == _csv(
        n_rows=50, changes={(3, "age"): "old", (7, "contract"): "lifetime"}
    )
    bad = _rows_on_disk(ingested.bad_path)
    assert list(bad["row_number"]) == ["4", "8"]
    assert list(bad["reason"]) == ["wrong_type:age=old", "unknown_category:contract=lifetime"]
    assert not Alert.objects.exists()  # 4% bad: under the threshold


@pytest.mark.django_db
def test_the_task_and_the_command_run_a_pass(folders, churn_model):
    _raw(folders, "by-task.csv", _csv(n_rows=5, seed=1))
    run_id = ingest_raw_files_task.delay(CHURN).get()
    assert IngestionRun.objects.get(pk=run_id).files_processed == 1

    _raw(folders, "by-command.csv", _csv(n_rows=6, seed=2))
    out = io.StringIO()
    call_command("ingest", stdout=out)
    assert f"{CHURN}/by-command.csv: done, 6 in = 6 good + 0 bad" in out.getvalue()


# --- whole-file failures and awkward files, each end to end ---------------------------

HEADER = _csv(n_rows=1).splitlines()[0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "rows", "reason"),
    [
        (b"", 0, "empty file"),
        ((HEADER + "\n").encode(), 0, "header only"),
        (_csv(n_rows=3).replace("north", "n\xf6rth").encode("latin-1"), 3, "not UTF-8"),
        (_csv(n_rows=3).encode("utf-16"), 3, "UTF-16"),
        (_csv(n_rows=4).encode()[:-30] + b"\xff\xfe\x80" + _csv(n_rows=4).encode()[-30:], 4, "not UTF-8"),
        (bytes(range(256)) * 8, 0, "not a CSV"),
        (b"age,contract\n40,one-year\n51,two-year\n", 2, "missing required column(s)"),
        (_csv(n_rows=3).replace(",region", ",area", 1).encode(), 3, "missing required column(s): region"),
    ],
    ids=[
        "empty",
        "header-only",
        "latin-1",
        "utf-16",
        "invalid-bytes",
        "binary",
        "missing-columns",
        "renamed-column",
    ],
)
def test_unreadable_files_are_quarantined_whole_with_an_alert(folders, churn_model, content, rows, reason):
    _raw(folders, "broken.csv", content)

    run = ingestion_run_execute(model_name=CHURN)

    ingested = IngestedFile.objects.get()
    assert (ingested.status, ingested.rows_in, ingested.rows_bad) == ("quarantined", rows, rows)
    assert reason in ingested.reason and run.files_processed == 1 and run.error == ""
    _accounted(ingested)
    assert Path(ingested.bad_path).read_bytes() == content  # quarantined as received
    assert Path(ingested.bad_path).parent == folders / "bad"
    assert _left_in(folders / "raw") == [] and _left_in(folders / "good") == []
    assert not GoodFile.objects.exists()
    alert = Alert.objects.get()
    assert (alert.kind, alert.severity, alert.ingested_file) == ("data_quality", "error", ingested)
    assert alert.title == "broken.csv quarantined whole" and reason in alert.message


@pytest.mark.django_db
def test_an_extra_column_is_left_out_of_good_rows_and_noted(folders, churn_model):
    frame = pd.read_csv(io.StringIO(_csv(n_rows=20, changes={(2, "age"): "??"})))
    frame["customer_note"] = "vip"
    _raw(folders, "extra.csv", frame.to_csv(index=False))

    ingestion_run_execute(model_name=CHURN)

    ingested = IngestedFile.objects.get()
    assert (ingested.status, ingested.rows_good, ingested.rows_bad) == ("done", 19, 1)
    _accounted(ingested)
    assert "customer_note" not in _rows_on_disk(ingested.good_path).columns
    assert _rows_on_disk(ingested.bad_path)["customer_note"].tolist() == ["vip"]
    issue = DataQualityIssue.objects.get(rule="extra_column")
    assert (issue.column, issue.severity, issue.count) == ("customer_note", "warning", 20)


@pytest.mark.django_db
def test_quoted_newlines_are_one_row_each(folders, churn_model):
    content = _csv(n_rows=10, changes={(4, "region"): "north\nwest", (6, "payment_method"): "card"})
    assert content.count("\n") == 12  # 11 records, one of them over two lines
    _raw(folders, "multiline.csv", content)

    ingestion_run_execute(model_name=CHURN)

    ingested = IngestedFile.objects.get()
    assert (ingested.rows_in, ingested.rows_good, ingested.rows_bad) == (10, 9, 1)
    _accounted(ingested)
    bad = _rows_on_disk(ingested.bad_path)
    assert bad["region"].tolist() == ["north\nwest"] and bad["row_number"].tolist() == ["5"]


@pytest.mark.django_db
def test_files_still_being_written_wait_until_complete(folders, churn_model):
    _raw(folders, "coming.csv.part", _csv(n_rows=5, seed=1))
    _raw(folders, ".hidden.csv", _csv(n_rows=5, seed=2))
    fresh = _raw(folders, "fresh.csv", _csv(n_rows=5, seed=3), age_seconds=0)

    run = ingestion_run_execute(model_name=CHURN, min_age_seconds=30)

    assert run.files_seen == 0 and not IngestedFile.objects.exists()
    assert _left_in(folders / "raw") == [".hidden.csv", "coming.csv.part", "fresh.csv"]

    (folders / "raw" / "coming.csv.part").rename(folders / "raw" / "coming.csv")  # the writer is done
    old = time.time() - 60
    os.utime(fresh, (old, old))
    os.utime(folders / "raw" / "coming.csv", (old, old))
    run = ingestion_run_execute(model_name=CHURN, min_age_seconds=30)

    assert run.files_processed == 2 and _left_in(folders / "raw") == [".hidden.csv"]
    for ingested in IngestedFile.objects.all():
        _accounted(ingested)


# --- alerts ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_bad_share_over_the_threshold_raises_one_alert_and_emails_it(
    folders, churn_model, settings, django_capture_on_commit_callbacks
):
    settings.MLAPP_ALERT_BAD_SHARE = 0.1
    settings.MLAPP_ALERT_EMAILS = ["ops@example.com"]
    _raw(folders, "dirty.csv", _csv(n_rows=40, changes={(i, "region"): "atlantis" for i in range(10)}))

    with django_capture_on_commit_callbacks(execute=True):
        ingestion_run_execute(model_name=CHURN)
        ingestion_run_execute(model_name=CHURN)

    alert = Alert.objects.get()
    assert alert.title == "25% bad rows in dirty.csv" and alert.severity == "warning"
    assert "10 of 40 rows quarantined (25%, threshold 10%)" in alert.message
    assert alert.ingested_file.rows_bad == 10
    assert len(mail.outbox) == 1 and "dirty.csv" in mail.outbox[0].subject


@pytest.mark.django_db
def test_under_the_threshold_no_alert_unless_a_rule_is_severe_enough(folders, churn_model, settings):
    settings.MLAPP_ALERT_BAD_SHARE = 0.5
    _raw(folders, "a.csv", _csv(n_rows=20, seed=1, changes={(0, "age"): "x"}))
    ingestion_run_execute(model_name=CHURN)
    assert not Alert.objects.exists()

    settings.MLAPP_ALERT_MIN_SEVERITY = "error"
    _raw(folders, "b.csv", _csv(n_rows=20, seed=2, changes={(0, "age"): "x"}))
    ingestion_run_execute(model_name=CHURN)

    alert = Alert.objects.get()
    assert alert.title == "Severe data-quality issues in b.csv" and alert.severity == "error"
    assert "wrong_type in age: 1 row(s) (error)" in alert.message


def test_an_unknown_alert_severity_setting_is_refused(settings):
    settings.MLAPP_ALERT_MIN_SEVERITY = "loud"
    with pytest.raises(ValueError, match="MLAPP_ALERT_MIN_SEVERITY='loud'"):
        IngestionConfig.from_settings()


# --- exactly once: duplicates, crashes, retries ------------------------------------------


@pytest.mark.django_db
def test_the_same_content_under_another_name_is_ingested_once_and_archived_with_a_note(folders, churn_model):
    content = _csv(n_rows=20, seed=3)
    _raw(folders, "a.csv", content)
    ingestion_run_execute(model_name=CHURN)
    _raw(folders, "a-copy.csv", content)

    run = ingestion_run_execute(model_name=CHURN)

    original = IngestedFile.objects.get()
    assert run.files_seen == 1 and run.files_processed == 0 and GoodFile.objects.count() == 1
    assert _left_in(folders / "raw") == []
    (copy,) = (folders / "archive" / "duplicates").glob("*-a-copy.csv")
    assert copy.read_text() == content
    note = copy.with_name(copy.name + ".note.txt").read_text()
    assert f"same content (sha256 {original.sha256}) as a.csv" in note
    issue = DataQualityIssue.objects.get(rule="duplicate_file")
    assert (issue.ingested_file, issue.severity, issue.sample_values) == (original, "info", ["a-copy.csv"])
    _accounted(original)


@pytest.mark.django_db
def test_a_crash_while_splitting_leaves_the_file_retryable_and_nothing_half_written(
    folders, churn_model, django_capture_on_commit_callbacks
):
    content = _csv(n_rows=10, changes={(1, "age"): "x"})
    _raw(folders, "retry.csv", content)
    # Something in the way of the bad file: the good file is already in place when writing the bad one fails.
    blocker = folders / "bad" / f"{_stem('retry.csv', content)}.csv"
    blocker.mkdir(parents=True)

    with django_capture_on_commit_callbacks(execute=True):
        first = ingestion_run_execute(model_name=CHURN)

    ingested = IngestedFile.objects.get()
    assert ingested.status == "failed" and "IsADirectoryError" in ingested.reason
    assert first.files_processed == 0 and "retry.csv: internal error" in first.error
    assert _left_in(folders / "raw") == ["retry.csv"]
    assert _left_in(folders / "good") == [] and _left_in(folders / "bad") == []
    assert not GoodFile.objects.exists() and not ingested.issues.exists()
    assert Alert.objects.get().kind == "system"

    blocker.rmdir()
    second = ingestion_run_execute(model_name=CHURN)

    ingested.refresh_from_db()
    assert (ingested.status, ingested.run_id, ingested.rows_good, ingested.rows_bad) == ("done", second.pk, 9, 1)
    assert ingested.reason == "" and second.error == ""
    _accounted(ingested)
    assert GoodFile.objects.count() == 1 and Alert.objects.count() == 1  # the failure alert is not repeated


@pytest.mark.django_db
def test_a_crash_after_the_commit_is_finished_by_the_next_run(folders, churn_model):
    content = _csv(n_rows=8, seed=5)
    _raw(folders, "late.csv", content)
    archived = folders / "archive" / f"{timezone.now():%Y-%m-%d}" / f"{_stem('late.csv', content)}.csv"
    archived.mkdir(parents=True)  # the move of the original fails

    ingestion_run_execute(model_name=CHURN)

    ingested = IngestedFile.objects.get()
    assert ingested.status == "done" and ingested.archived_path == str(archived)
    assert _left_in(folders / "raw") == ["late.csv"]

    archived.rmdir()
    run = ingestion_run_execute(model_name=CHURN)

    assert run.files_processed == 0 and IngestedFile.objects.count() == 1
    assert _left_in(folders / "raw") == [] and archived.read_text() == content
    assert not DataQualityIssue.objects.filter(rule="duplicate_file").exists()  # finished, not a duplicate
    assert GoodFile.objects.count() == 1
    _accounted(ingested)


@pytest.mark.django_db
def test_a_claim_left_by_a_killed_worker_is_retried_once_stale(folders, churn_model, settings):
    content = _csv(n_rows=6, seed=6)
    _raw(folders, "orphan.csv", content)
    sha256 = hashlib.sha256(content.encode()).hexdigest()
    claim = IngestedFile.objects.create(
        model_name=CHURN, sha256=sha256, original_name="orphan.csv"
    )  # PROCESSING, worker gone

    run = ingestion_run_execute(model_name=CHURN)
    assert run.files_processed == 0 and IngestedFile.objects.get().status == "processing"  # may still be running

    IngestedFile.objects.filter(pk=claim.pk).update(started_at=timezone.now() - timezone.timedelta(hours=1))
    run = ingestion_run_execute(model_name=CHURN)

    claim.refresh_from_db()
    assert run.files_processed == 1 and claim.status == "done" and claim.run_id == run.pk
    _accounted(claim)


@pytest.mark.django_db
def test_no_model_in_production_leaves_files_in_raw(folders, settings, mlflow_store):
    waiting = ModelFolders(folders.root, "nothing-served")
    waiting.__truediv__("raw").mkdir(parents=True)
    _raw(waiting, "wait.csv", _csv(n_rows=5))

    run = ingestion_run_execute(model_name="nothing-served")

    assert "no model in production" in run.error and _left_in(waiting / "raw") == ["wait.csv"]
    assert not IngestedFile.objects.exists()


@pytest.mark.django_db
def test_demo_stream_files_go_through_with_their_faults(folders, churn_model):
    config = DemoStreamConfig(dataset="churn", rows=200, fault_share=0.05)
    demo_stream_file_write(config=config, raw_dir=folders / "raw", seed=1)
    for incident in ("utf16", "dirty", "missing_column"):
        demo_stream_file_write(config=config, raw_dir=folders / "raw", seed=2, incident=incident)
    for path in (folders / "raw").iterdir():
        os.utime(path, (time.time() - 60, time.time() - 60))

    ingestion_run_execute(model_name=CHURN)

    files = {f.original_name.rsplit("-", 1)[-1]: f for f in IngestedFile.objects.all()}
    assert len(files) == 4
    clean = next(f for name, f in files.items() if name.split(".")[0].isdigit())
    assert clean.status == "done" and 0 < clean.rows_bad <= 10 and clean.rows_good >= 190
    assert files["utf16.csv"].status == files["missing_column.csv"].status == "quarantined"
    assert files["dirty.csv"].status == "done" and files["dirty.csv"].bad_share > 0.3
    for ingested in files.values():
        _accounted(ingested)
    assert Alert.objects.filter(kind="data_quality").count() == 3  # two rejected whole, one too dirty


# --- real concurrency -------------------------------------------------------------------


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_overlapping_runs_process_each_file_once(folders, churn_model):
    n_files = 8
    for i in range(n_files):
        _raw(folders, f"batch-{i}.csv", _csv(n_rows=300, seed=10 + i, changes={(0, "age"): "x"}))
    barrier = threading.Barrier(2)
    runs, failures = [], []

    def run():
        try:
            barrier.wait()
            runs.append(ingestion_run_execute(model_name=CHURN))
        except Exception as exc:  # surfaced below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert not failures and len(runs) == 2
    assert sum(r.files_processed for r in runs) == n_files and all(r.error == "" for r in runs)
    files = list(IngestedFile.objects.all())
    assert len(files) == n_files and {f.status for f in files} == {"done"}
    assert sum(f.rows_in for f in files) == n_files * 300 and all(f.rows_bad >= 1 for f in files)
    for ingested in files:
        _accounted(ingested)
    assert GoodFile.objects.count() == n_files
    assert not DataQualityIssue.objects.filter(rule="duplicate_file").exists()
    assert _left_in(folders / "raw") == []
    assert len(_left_in(folders / "good")) == len(_left_in(folders / "bad")) == n_files
    assert len(_left_in(folders / "archive")) == n_files  # no copy taken for a duplicate

"""Hostile entries in raw/: links and other non-files are quarantined unread; caps on a file's shape
quarantine it naming the limit; issues per file are bounded; the quarantine's disk use is reported."""

import hashlib
import os
import time
from pathlib import Path

import pytest
from django.urls import reverse

from models_registry.csv_limits import CsvLimitError, CsvLimits, csv_limits_check
from models_registry.demo_data import churn_frame
from monitoring.models import Alert, DataQualityIssue, IngestedFile, IngestionRun
from monitoring.services.ingestion import ingested_file_process, ingestion_run_execute
from predictions.models import BatchJob, GoodFile, Prediction
from predictions.services import batch
from tests.conftest import CHURN

pytestmark = pytest.mark.django_db


@pytest.fixture
def raw(settings, tmp_path, churn_model) -> Path:
    settings.MLAPP_DATA_DIR = tmp_path / "data"
    settings.MLAPP_INGEST_MIN_AGE_SECONDS = 0
    folder = tmp_path / "data" / "raw" / CHURN
    folder.mkdir(parents=True)
    return folder


def _csv(n_rows=20, seed=3) -> str:
    return churn_frame(n_rows=n_rows, seed=seed).drop(columns=["churned"]).to_csv(index=False)


def _settled(path: Path) -> Path:
    old = time.time() - 60
    os.utime(path, (old, old), follow_symlinks=False)
    return path


def _bad(raw: Path) -> Path:
    return raw.parents[1] / "bad" / CHURN


# --- entries that are not regular files ------------------------------------------------------


def test_a_symlink_to_a_file_is_quarantined_unread_and_nothing_of_its_target_shows(raw, tmp_path, user_client):
    secret = tmp_path / "outside" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text(_csv(n_rows=33))  # a valid file: had it been followed, 33 good rows
    link = raw / "innocent.csv"
    link.symlink_to(secret)
    _settled(link)

    run = ingestion_run_execute(model_name=CHURN)

    ingested = IngestedFile.objects.get()
    assert (ingested.status, ingested.rows_in, ingested.rows_good, ingested.rows_bad) == ("quarantined", 0, 0, 0)
    assert ingested.reason == "a symbolic link, not a regular file: quarantined without being opened or followed"
    assert ingested.size_bytes == 0 and not ingested.is_regular_file
    assert ingested.sha256 != hashlib.sha256(secret.read_bytes()).hexdigest()
    assert not GoodFile.objects.exists() and not DataQualityIssue.objects.exists()
    moved = Path(ingested.bad_path)
    assert moved.is_symlink() and moved.parent == _bad(raw) and not link.exists() and not link.is_symlink()
    assert secret.read_text() == _csv(n_rows=33)  # the target is untouched
    assert (run.files_seen, run.files_processed) == (1, 1)
    assert Alert.objects.get().title == "innocent.csv quarantined whole"

    page = user_client.get(reverse("monitoring:ingested_file", args=[ingested.pk])).content.decode()
    api = user_client.get(f"/api/v1/ingestion/files/{ingested.pk}/").content.decode()
    for shown in (page, api):
        assert "innocent.csv" in shown and "symbolic link" in shown
        assert hashlib.sha256(secret.read_bytes()).hexdigest()[:12] not in shown
        assert "secret" not in shown and "tenure_months" not in shown  # no path, no content of the target
    assert "not a regular file: its content is not shown" in page
    assert ingestion_run_execute(model_name=CHURN).files_seen == 0  # gone from raw/: not seen again


def test_a_link_to_a_folder_a_folder_and_a_fifo_are_quarantined_and_do_not_stay(raw, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "inner.csv").write_text(_csv())
    (raw / "dir-link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (raw / "a-folder").mkdir()
    (raw / "a-folder" / "inside.csv").write_text(_csv())
    os.mkfifo(raw / "pipe.csv")  # opening it would block the run forever
    (raw / "good.csv").write_text(_csv(n_rows=10))
    for entry in raw.iterdir():
        _settled(entry)

    ingestion_run_execute(model_name=CHURN)

    reasons = dict(IngestedFile.objects.values_list("original_name", "reason"))
    assert reasons["dir-link"].startswith("a symbolic link, not a regular file")
    assert reasons["a-folder"].startswith("a directory, not a regular file")
    assert reasons["pipe.csv"].startswith("a named pipe (FIFO), not a regular file")
    assert IngestedFile.objects.get(original_name="good.csv").rows_good == 10
    assert list(raw.iterdir()) == []
    assert (tmp_path / "elsewhere" / "inner.csv").is_file()  # the linked folder is left alone
    assert IngestedFile.objects.filter(status="quarantined").count() == 3


def test_a_file_swapped_for_a_link_after_listing_is_not_followed(raw, tmp_path):
    target = tmp_path / "passwd"
    target.write_text("root:x:0:0\n")
    path = raw / "late.csv"
    path.symlink_to(target)  # listed as a file a moment ago; a link by the time it is opened

    ingested = ingested_file_process(path=path, run=IngestionRun.objects.create(model_name=CHURN))

    assert ingested.status == "quarantined" and ingested.reason.startswith("a symbolic link")
    assert ingested.size_bytes == 0 and not ingested.is_regular_file


# --- caps on a file's shape ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "content", "named"),
    [
        ("MLAPP_CSV_MAX_COLUMNS", 12, None, "more than MLAPP_CSV_MAX_COLUMNS=12"),
        ("MLAPP_CSV_MAX_HEADER_BYTES", 40, None, "the header is longer than 40 bytes (MLAPP_CSV_MAX_HEADER_BYTES=40)"),
        ("MLAPP_CSV_MAX_FIELD_BYTES", 100, "long-field", "on data line 3 is longer than 100 bytes"),
        (
            "MLAPP_CSV_MAX_ROW_BYTES",
            300,
            "wide-row",
            "data line 3 is longer than 300 bytes (MLAPP_CSV_MAX_ROW_BYTES=300)",
        ),
    ],
)
def test_each_cap_quarantines_the_file_naming_the_limit(raw, settings, setting, value, content, named):
    setattr(settings, setting, value)
    frame = churn_frame(n_rows=5, seed=4).drop(columns=["churned"]).astype(object)
    if content == "long-field":
        frame.loc[2, "region"] = "x" * 101
    elif content == "wide-row":
        frame.loc[2, "region"] = "y" * 99
        frame.loc[2, "contract"] = "z" * 99
        frame.loc[2, "payment_method"] = "w" * 99
    elif setting == "MLAPP_CSV_MAX_COLUMNS":
        for i in range(4):
            frame[f"extra_{i}"] = 1
    (raw / "shaped.csv").write_text(frame.to_csv(index=False))
    _settled(raw / "shaped.csv")

    ingestion_run_execute(model_name=CHURN)

    ingested = IngestedFile.objects.get()
    assert ingested.status == "quarantined" and named in ingested.reason, ingested.reason
    assert (ingested.rows_in, ingested.rows_bad, ingested.rows_good) == (5, 5, 0)
    assert Path(ingested.bad_path).is_file()  # the original, kept whole


def test_a_100000_column_file_is_quarantined_at_once_and_its_page_stays_small(raw, user_client):
    names = [f"c{i}" for i in range(100_000)]
    row = ",".join("1" for _ in names)
    (raw / "wide.csv").write_text(",".join(names) + "\n" + "\n".join([row] * 20) + "\n")
    _settled(raw / "wide.csv")

    ingestion_run_execute(model_name=CHURN)

    ingested = IngestedFile.objects.get()
    assert ingested.status == "quarantined"
    # ~590 KB of names: past the header's cap before the columns are even counted
    assert ingested.reason == "the header is longer than 64 KiB (MLAPP_CSV_MAX_HEADER_BYTES=65536)"
    assert ingested.rows_in == 20 and not DataQualityIssue.objects.exists()
    page = user_client.get(reverse("monitoring:ingested_file", args=[ingested.pk]))
    assert page.status_code == 200 and len(page.content) < 40_000


def test_a_header_past_64_kib_with_repeated_names_is_refused_for_its_length(raw):
    names = ["age"] * 20_000  # 80 KB of header, names repeated
    (raw / "long-header.csv").write_text(",".join(names) + "\n" + ",".join(["1"] * 20_000) + "\n")
    _settled(raw / "long-header.csv")

    ingestion_run_execute(model_name=CHURN)

    assert IngestedFile.objects.get().reason == ("the header is longer than 64 KiB (MLAPP_CSV_MAX_HEADER_BYTES=65536)")


def test_the_limits_check_measures_lines_and_fields_and_counts_lines(tmp_path):
    limits = CsvLimits(max_columns=5, max_header_bytes=100, max_field_bytes=10, max_row_bytes=30)
    fine = tmp_path / "fine.csv"
    fine.write_bytes(b"a,b,c\n" + b"1234567890,1,2\n" * 3 + b'"x,y",2,3')  # no line end at the end
    csv_limits_check(fine, limits=limits)
    field = tmp_path / "field.csv"
    field.write_bytes(b"a,b,c\n1,2,3\n1,12345678901,3\n4,5,6\n")
    with pytest.raises(CsvLimitError) as caught:
        csv_limits_check(field, limits=limits)
    assert "a field on data line 2 is longer than 10 bytes" in str(caught.value) and caught.value.lines == 3
    row = tmp_path / "row.csv"
    row.write_bytes(b"a,b,c\n" + b"1,2,3\n" * 4 + b"1234567890,1234567890,123456789\n")
    with pytest.raises(CsvLimitError, match="data line 5 is longer than 30 bytes"):
        csv_limits_check(row, limits=limits)
    columns = tmp_path / "columns.csv"
    columns.write_bytes(b'a,"b,c",d,e,f,g\n1,2,3,4,5,6\n')
    with pytest.raises(CsvLimitError, match="6 columns, more than MLAPP_CSV_MAX_COLUMNS=5"):
        csv_limits_check(columns, limits=limits)
    quoted = tmp_path / "quoted.csv"
    quoted.write_bytes(b'a,b\n"1,2,3,4,5,6,7,8,9",x\n')  # a quoted comma splits what is measured: fine
    csv_limits_check(quoted, limits=limits)
    with pytest.raises(ValueError, match="at most 65536"):
        CsvLimits(max_header_bytes=70_000)


def test_a_batch_upload_past_a_cap_fails_naming_it(churn_model, tmp_path, settings):
    settings.MLAPP_CSV_MAX_COLUMNS = 5
    path = tmp_path / "in.csv"
    path.write_text(_csv(n_rows=5))
    job = BatchJob.objects.create(model_name=churn_model.name, input_path=str(path), original_filename="in.csv")

    done = batch.batch_job_run(job_id=job.pk)

    assert done.status == "failed" and "columns, more than MLAPP_CSV_MAX_COLUMNS=5" in done.error
    assert not Prediction.objects.filter(batch_job=done).exists()


# --- issues per file, and the quarantine's disk use ------------------------------------------


def test_issues_per_file_are_capped_and_many_extra_columns_are_one_issue(raw, settings):
    settings.MLAPP_INGEST_MAX_ISSUES_PER_FILE = 3
    frame = churn_frame(n_rows=30, seed=5).drop(columns=["churned"]).astype(object)
    frame.loc[0, "age"] = "old"
    frame.loc[1, "tenure_months"] = "long"
    frame.loc[2, "monthly_charges"] = "lots"
    frame.loc[3, "support_calls"] = "many"
    for i in range(25):
        frame[f"extra_{i}"] = i
    (raw / "noisy.csv").write_text(frame.to_csv(index=False))
    _settled(raw / "noisy.csv")

    ingestion_run_execute(model_name=CHURN)

    ingested = IngestedFile.objects.get()
    issues = list(ingested.issues.all())
    assert len(issues) == 3 and ingested.rows_bad == 4
    more = next(issue for issue in issues if issue.rule == "more_issues")
    assert "MLAPP_INGEST_MAX_ISSUES_PER_FILE" in more.message and more.count >= 2
    assert {issue.severity for issue in issues if issue.rule == "wrong_type"} == {"error"}
    settings.MLAPP_INGEST_MAX_ISSUES_PER_FILE = 100
    frame.loc[0, "age"] = 40  # a new content: ingested as a second file
    (raw / "noisy2.csv").write_text(frame.to_csv(index=False))
    _settled(raw / "noisy2.csv")
    ingestion_run_execute(model_name=CHURN)
    extra = DataQualityIssue.objects.get(ingested_file__original_name="noisy2.csv", rule="extra_column")
    assert extra.column == "" and extra.sample_values == [f"extra_{i}" for i in range(5)]
    assert extra.message.startswith("25 columns are not features of the model")


def test_the_quarantine_s_disk_use_is_shown_and_alerted_past_its_limit(raw, settings, user_client):
    settings.MLAPP_QUARANTINE_ALERT_MB = 0.001  # about 1 KB
    (raw / "garbled.csv").write_bytes(_csv(n_rows=40).encode("utf-16"))
    _settled(raw / "garbled.csv")

    ingestion_run_execute(model_name=CHURN)

    alert = Alert.objects.get(kind="system")
    assert alert.title.startswith(f"The quarantine of {CHURN} takes") and "MLAPP_QUARANTINE_ALERT_MB" in alert.message
    page = user_client.get(reverse("monitoring:ingestion", args=[CHURN])).content.decode()
    assert "quarantine on disk:" in page and "1 entry" in page and "above the" in page
    ingestion_run_execute(model_name=CHURN)
    assert Alert.objects.filter(kind="system").count() == 1  # once a day, not every run

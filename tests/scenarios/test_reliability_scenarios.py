"""The long reliability scenarios, with the default timeouts and production sizes. Each prints its
figures; commands in docs/reliability.md (MLAPP_SCENARIOS=1, PostgreSQL and Redis)."""

import os
import resource
import subprocess
import sys
import time

import pytest

from tests.conftest import requires_postgres, requires_redis
from tests.integration.killed_batch import killed_batch_run, rows_stored_per_line
from tests.integration.processes import ROOT, process_env
from tests.integration.test_stalled_database import assert_fast_503_then_recovered, stall_run

ROWS = int(os.environ.get("MLAPP_SCENARIO_ROWS", "500000"))


@requires_postgres
@requires_redis
@pytest.mark.django_db(transaction=True)
def test_scenario_kill_9_mid_batch_of_500000_rows_finishes_within_a_minute_every_row_once(churn_model, tmp_path):
    from django.conf import settings  # noqa: PLC0415

    bad = [0, ROWS // 2, ROWS - 1]
    figures = killed_batch_run(
        tmp_path,
        model_name=churn_model.name,
        n_rows=ROWS,
        bad_rows=bad,
        chunk_rows=settings.MLAPP_BATCH_CHUNK_ROWS,  # the defaults: 50,000 rows, stale 30 s, reclaim 15 s
        stale_seconds=settings.MLAPP_JOB_STALE_SECONDS,
        reclaim_every=settings.MLAPP_JOB_RECLAIM_EVERY_SECONDS,
        kill_after_chunks=2,
        deadline_seconds=600,
    )
    print("\nkilled batch:", figures.line())
    job = figures.job
    assert job.status == "succeeded" and job.attempts == 2, job.error
    assert rows_stored_per_line(job) == {1: ROWS - len(bad)}
    assert job.summary["rows_scored"] == ROWS - len(bad) and job.summary["rows_rejected"] == len(bad)
    assert figures.seconds_kill_to_done < 60, figures.line()


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_scenario_a_30_s_database_stall_gets_503s_within_2_s_and_recovers(tmp_path):
    figures = stall_run(tmp_path, outage_seconds=30)
    print("\nstalled database:", figures.line())
    assert_fast_503_then_recovered(figures, outage_seconds=30)


def _peak_of(command: list[str], env: dict) -> tuple[float, int, str]:
    """(seconds, peak RSS in bytes, output) of a child process."""
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(process.pid, 0)
    output = process.stdout.read().decode()
    assert os.waitstatus_to_exitcode(status) == 0, output
    return time.monotonic() - started, usage.ru_maxrss * 1024, output


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_scenario_a_100000_column_file_is_quarantined_in_bounded_time_and_memory(churn_model, tmp_path, user_client):
    from django.urls import reverse  # noqa: PLC0415

    from models_registry.demo_data import churn_frame  # noqa: PLC0415
    from monitoring.models import IngestedFile  # noqa: PLC0415

    data = tmp_path / "data"
    raw = data / "raw" / churn_model.name
    raw.mkdir(parents=True)
    env = process_env(tmp_path, MLAPP_DATA_DIR=str(data))
    command = [sys.executable, "manage.py", "ingest", "--model", churn_model.name, "--min-age", "0"]

    # The floor: a normal file of the same number of rows, same command, same run.
    churn_frame(n_rows=1000, seed=2).drop(columns=["churned"]).to_csv(raw / "normal.csv", index=False)
    floor_seconds, floor_peak, _ = _peak_of(command, env)

    names = [f"c{i}" for i in range(100_000)]
    wide = raw / "wide.csv"
    with wide.open("w") as handle:
        handle.write(",".join(names) + "\n")
        row = ",".join("1" for _ in names) + "\n"
        for _ in range(1000):
            handle.write(row)
    size = wide.stat().st_size
    seconds, peak, output = _peak_of(command, env)

    ingested = IngestedFile.objects.get(original_name="wide.csv")
    page_started = time.monotonic()
    page = user_client.get(reverse("monitoring:ingested_file", args=[ingested.pk]))
    page_seconds = time.monotonic() - page_started
    print(
        f"\nwide file: {size / 2**20:.0f} MiB, 100,000 columns x 1,000 rows: {ingested.status} "
        f"({ingested.reason}); ingest command {seconds:.2f} s, peak RSS {peak / 2**20:.0f} MiB; "
        f"floor (1,000-row normal file): {floor_seconds:.2f} s, {floor_peak / 2**20:.0f} MiB "
        f"(ratio {peak / floor_peak:.2f}); detail page {len(page.content) / 1024:.1f} KiB in {page_seconds:.3f} s; "
        f"test process peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    assert ingested.status == "quarantined" and "MLAPP_CSV_MAX_HEADER_BYTES" in ingested.reason, output
    assert ingested.rows_in == 1000 and not ingested.issues.exists()
    assert peak < floor_peak * 1.5 and page.status_code == 200 and len(page.content) < 40_000

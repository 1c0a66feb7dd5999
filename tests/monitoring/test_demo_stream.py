"""The demo stream: files arrive atomically, with the faults, incidents and drift asked for."""

import io

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from models_registry.demo_data import churn_frame
from monitoring.services.demo_stream import (
    INCIDENTS,
    DemoStreamConfig,
    DemoStreamError,
    demo_dataset_for_served_model,
    demo_stream_file_write,
    demo_stream_run,
)


def _read(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_a_clean_file_has_the_features_and_no_target(tmp_path):
    config = DemoStreamConfig(dataset="churn", rows=120, fault_share=0.0)

    demo_file = demo_stream_file_write(config=config, raw_dir=tmp_path, seed=4)

    frame = _read(demo_file.path)
    assert len(frame) == 120 and demo_file.rows == 120 and demo_file.faults == {}
    assert "churned" not in frame.columns and "age" in frame.columns
    assert [p.name for p in tmp_path.iterdir()] == [demo_file.path.name]  # no .part left behind


def test_faults_are_injected_in_the_share_asked_for(tmp_path):
    config = DemoStreamConfig(dataset="churn", rows=400, fault_share=0.1)

    demo_file = demo_stream_file_write(config=config, raw_dir=tmp_path, seed=5)

    assert sum(demo_file.faults.values()) == 40
    frame = _read(demo_file.path)
    clean = churn_frame(n_rows=400, seed=5).drop(columns=["churned"]).astype(str)
    changed = (frame != clean.reset_index(drop=True)).any(axis=1).sum()
    assert 0 < changed <= 40


@pytest.mark.parametrize("incident", INCIDENTS)
def test_incidents_break_the_file_as_named(tmp_path, incident):
    config = DemoStreamConfig(dataset="housing", rows=50)

    demo_file = demo_stream_file_write(config=config, raw_dir=tmp_path, seed=6, incident=incident)

    payload = demo_file.path.read_bytes()
    if incident == "utf16":
        assert payload.startswith((b"\xff\xfe", b"\xfe\xff"))
    elif incident == "missing_column":
        assert "area_m2" not in _read(demo_file.path).columns
    elif incident == "header_only":
        assert payload.count(b"\n") == 1 and demo_file.rows == 0
    elif incident == "empty":
        assert payload == b""
    elif incident == "not_csv":
        assert len(payload) == 2048
    else:  # dirty: far more faults than the configured share
        assert sum(demo_file.faults.values()) == 20


def test_drift_shifts_the_distributions_from_the_given_time(tmp_path):
    config = DemoStreamConfig(dataset="churn", rows=400, fault_share=0.0, broken_every=0, drift_after_minutes=2)
    ticks = iter([0.0, 0.0, 60.0, 180.0])  # start, then one reading per file

    files = demo_stream_run(
        config=config,
        every_seconds=0,
        max_files=3,
        raw_dir=tmp_path,
        seed=10,
        sleep=lambda s: None,
        clock=lambda: next(ticks),
    )

    assert [f.drift for f in files] == [0.0, 0.0, 0.8]
    ages = [pd.to_numeric(_read(f.path)["age"]).mean() for f in files]
    assert ages[2] > max(ages[:2]) + 4


def test_every_nth_file_is_an_incident(tmp_path):
    config = DemoStreamConfig(dataset="churn", rows=20, broken_every=2, drift_after_minutes=None)

    files = demo_stream_run(config=config, every_seconds=0, max_files=4, raw_dir=tmp_path, seed=1, sleep=lambda s: None)

    assert [f.incident for f in files] == [None, INCIDENTS[0], None, INCIDENTS[1]]
    assert len(list(tmp_path.iterdir())) == 4


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dataset": "weather"}, "Unknown demo dataset"),
        ({"fault_share": 1.5}, "fault share"),
        ({"drift": -0.1}, "drift"),
        ({"rows": 0}, "rows"),
    ],
)
def test_bad_options_are_refused(changes, message):
    with pytest.raises(DemoStreamError, match=message):
        DemoStreamConfig(**{"dataset": "churn", **changes})


@pytest.mark.django_db
def test_the_dataset_follows_the_model(housing_model, churn_model):
    assert demo_dataset_for_served_model(model_name=housing_model.name) == "housing"
    assert demo_dataset_for_served_model(model_name=churn_model.name) == "churn"


@pytest.mark.django_db
def test_the_command_writes_one_file_for_the_served_model(churn_model, settings, tmp_path):
    settings.MLAPP_DATA_DIR = tmp_path
    out = io.StringIO()

    call_command("demo_stream", "--model", churn_model.name, "--once", "--rows", "30", stdout=out)

    (written,) = (tmp_path / "raw" / churn_model.name).iterdir()
    assert written.name.startswith("demo-churn-") and len(_read(written)) == 30
    assert written.name in out.getvalue()


@pytest.mark.django_db
def test_the_command_says_what_is_missing_without_a_served_model(settings, mlflow_store):
    with pytest.raises(CommandError, match="no production version"):
        call_command("demo_stream", "--model", "nothing-served-here", "--once")

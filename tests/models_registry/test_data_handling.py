"""Honest data handling in training: dates become features, row numbers are left out, the CSV's
delimiter is detected, and what was dropped is reported (command, job page, run); a refusal writes nothing."""

import io

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from django.core.management import CommandError, call_command

from models_registry import mlflow_access, services, trust
from models_registry.csv_reader import csv_frame_read, csv_header
from models_registry.demo_data import housing_frame
from models_registry.features import frame_for_model
from models_registry.models import AliasChange, ModelVersion, TrainingJob
from models_registry.rules import RulePath, RuleTable
from models_registry.serving import loader
from models_registry.training import TrainingInputError, model_train
from monitoring.drift_stats import drift_compute

pytestmark = pytest.mark.django_db


def _versions(name):
    return mlflow_access.client().search_model_versions(f"name = '{name}'")


def _houses(n_rows=200, seed=11) -> pd.DataFrame:
    frame = housing_frame(n_rows=n_rows, seed=seed)
    days = np.random.default_rng(seed).integers(0, 1400, n_rows)
    frame["listed_on"] = (pd.Timestamp("2021-01-04") + pd.to_timedelta(days, unit="D")).strftime("%Y-%m-%d")
    return frame


def test_a_date_column_becomes_features_and_serving_derives_them_the_same_way(
    mlflow_store, tmp_path, unique_model_name, user_client
):
    path = tmp_path / "houses.csv"
    _houses().to_csv(path, index=False)

    mv = model_train(csv=path, target="price", name=unique_model_name).model_version

    (listed,) = [f for f in mv.profile["features"] if f["name"] == "listed_on"]
    assert listed["kind"] == "datetime" and listed["parts"] == ["year", "month", "day", "dayofweek"]
    assert "2021-01-04" <= listed["first"] < listed["last"] <= "2024-11-04"
    assert mv.params["data_report"]["date_features"] == {"listed_on": ["year", "month", "day", "dayofweek"]}
    assert "listed_on" not in mv.params["dropped_columns"]
    # The logged MLflow model takes the date itself (the parts are a step of its pipeline).
    model = trust.trusted_pipeline_load(name=mv.name, version=mv.version, record=mv)
    row = {"area_m2": 100.0, "rooms": 3, "building_age": 10, "district": "suburb", "heating": "gas"}
    early = model.predict(frame_for_model(pd.DataFrame([{**row, "listed_on": "2021-02-01"}]), mv.profile))
    # The rule table checks a date; the served model (fast path and scikit-learn) scores it.
    table = RuleTable(mv.profile)
    checked = table.records_check([{**row, "listed_on": "2021-02-01"}, {**row, "listed_on": "soon"}], path=RulePath.API)
    assert [(i, f.field, f.rule) for i, f in checked.refused] == [(1, "listed_on", "wrong_type")]
    assert "not a date 'soon'" in checked.refused[0][1].problem
    services.alias_move(
        name=mv.name, version=mv.version, action=AliasChange.Action.BOOTSTRAP, actor_label="tests", reason="dates"
    )
    served = loader().get(unique_model_name)
    assert served.row_scorer is not None  # verified against scikit-learn, dates included
    fast = served.predict_records([checked.rows[0]]).values
    slow = served.predict_frame(pd.DataFrame([checked.rows[0]])).values
    assert fast == pytest.approx(slow, rel=1e-9) and fast == pytest.approx(early, rel=1e-9)
    # The predict form asks for a date, starting at the latest training date.
    form = user_client.get(f"/models/{unique_model_name}/predict/").content.decode()
    assert 'type="date"' in form and f'value="{listed["last"]}"' in form


def test_a_date_column_in_an_ingested_or_batch_file_is_checked_by_the_same_rules(
    mlflow_store, tmp_path, unique_model_name
):
    path = tmp_path / "houses.csv"
    _houses().to_csv(path, index=False)
    mv = model_train(csv=path, target="price", name=unique_model_name).model_version
    columns = {
        name: pa.array(values)
        for name, values in {
            "area_m2": ["100", "90"],
            "rooms": ["3", "2"],
            "building_age": ["10", "5"],
            "district": ["suburb", "rural"],
            "heating": ["gas", "gas"],
            "listed_on": ["2022-05-06", "06/05/2022"],
        }.items()
    }
    check = RuleTable(mv.profile).chunk_check(columns, path=RulePath.INGESTION)
    assert [(rule, name, list(positions)) for rule, name, positions, *_ in check.findings] == [
        ("wrong_type", "listed_on", [1])
    ]


def test_a_column_that_only_numbers_the_rows_is_left_out_and_reported(mlflow_store, tmp_path, unique_model_name):
    frame = housing_frame(n_rows=150, seed=4)
    frame.insert(0, "row", range(1, len(frame) + 1))
    frame.insert(1, "rank", np.random.default_rng(0).permutation(len(frame)))  # a shuffled 0..n-1: still a count
    path = tmp_path / "ranked.csv"
    frame.to_csv(path, index=False)

    mv = model_train(csv=path, target="price", name=unique_model_name).model_version

    names = [f["name"] for f in mv.profile["features"]]
    assert "row" not in names and "rank" not in names and "rooms" in names
    left_out = {d["column"]: d["reason"] for d in mv.params["data_report"]["columns_left_out"]}
    assert left_out == {"row": "numbers the rows (1..150, each once)", "rank": "numbers the rows (0..149, each once)"}
    assert mlflow_access.client().get_run(mv.run_id).data.params["n_columns_left_out"] == "2"


@pytest.mark.parametrize(
    ("delimiter", "name"), [(";", "semicolon ';'"), ("\t", "tab"), ("|", "pipe '|'")], ids=["semicolon", "tab", "pipe"]
)
def test_semicolon_tab_and_pipe_files_are_read(mlflow_store, tmp_path, unique_model_name, delimiter, name):
    frame = housing_frame(n_rows=120, seed=6)
    frame.loc[0, "district"] = f"centre{delimiter} old town"  # quoted: the delimiter inside a field stays in it
    path = tmp_path / "houses.csv"
    frame.to_csv(path, index=False, sep=delimiter)

    mv = model_train(csv=path, target="price", name=unique_model_name).model_version

    assert [f["name"] for f in mv.profile["features"]] == [c for c in frame.columns if c != "price"]
    assert mv.params["csv_delimiter"] == name
    assert f"centre{delimiter} old town" in csv_frame_read(path)["district"].tolist()


def test_a_byte_order_mark_is_not_part_of_the_first_column(mlflow_store, tmp_path, unique_model_name):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + housing_frame(n_rows=80, seed=8).to_csv(index=False, sep=";").encode())

    mv = model_train(csv=path, target="price", name=unique_model_name).model_version

    assert csv_header(path)[0] == "area_m2"
    assert mv.profile["features"][0]["name"] == "area_m2"


def test_a_file_no_delimiter_splits_is_refused_naming_the_delimiter_and_writes_nothing(mlflow_store, unique_model_name):
    content = "area:rooms:price\n" + "".join(f"{i}:{i % 4}:{i * 3}\n" for i in range(40))

    with pytest.raises(TrainingInputError, match=r"has 1 column \(read with the delimiter comma ','"):
        model_train(csv=io.StringIO(content), target="price", name=unique_model_name, source_name="colon.csv")

    assert not ModelVersion.objects.filter(name=unique_model_name).exists()
    assert _versions(unique_model_name) == []


def test_a_malformed_row_is_refused_naming_the_delimiter_and_writes_nothing(mlflow_store, unique_model_name):
    content = "a;b;price\n" + "1;2;3\n" * 20 + "1;2;3;4\n"

    with pytest.raises(TrainingInputError, match="read with the delimiter semicolon ';'"):
        model_train(csv=io.StringIO(content), target="price", name=unique_model_name, source_name="bad.csv")

    assert _versions(unique_model_name) == []


def test_rows_without_a_target_are_dropped_and_counted_everywhere(
    mlflow_store, tmp_path, unique_model_name, staff_client, staff_user
):
    frame = housing_frame(n_rows=200, seed=9)
    frame.loc[frame.index[:37], "price"] = np.nan
    frame["empty"] = np.nan
    path = tmp_path / "partly.csv"
    frame.to_csv(path, index=False)

    out = io.StringIO()
    call_command("train", csv=str(path), target="price", name=unique_model_name, stdout=out)

    text = out.getvalue()
    assert "data: read 200 row(s), comma ','-separated" in text
    assert "data: dropped 37 row(s) without a value in 'price'" in text
    assert "data: left out 1 column(s): empty (empty)" in text
    assert "model selection" in text and "chosen:" in text
    mv = ModelVersion.objects.get(name=unique_model_name)
    assert mv.n_train_rows + mv.n_test_rows == 163
    run = mlflow_access.client().get_run(mv.run_id)
    assert run.data.params["n_rows_without_target"] == "37" and run.data.params["n_rows_read"] == "200"
    assert "dropped 37 row(s)" in run.data.tags["mlapp.data_report"]
    assert mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/data_report.json")["rows_without_target"] == 37
    # The training job page shows the same report.
    job = TrainingJob.objects.create(
        model_name=unique_model_name,
        csv_path=str(path),
        original_filename="partly.csv",
        target="price",
        status=TrainingJob.Status.SUCCEEDED,
        model_version=mv,
        created_by=staff_user,
    )
    page = staff_client.get(f"/models/train/{job.pk}/").content.decode()
    assert "dropped 37 row(s) without a value in &#x27;price&#x27;" in page
    status = staff_client.get(f"/models/train/{job.pk}/status/").json()
    assert "dropped 37 row(s) without a value in 'price'" in status["report"]
    version_page = staff_client.get(f"/models/{mv.name}/versions/{mv.version}/").content.decode()
    assert "dropped 37 row(s)" in version_page and "Data handling" in version_page


def test_too_few_rows_with_a_target_says_how_many_have_none_and_writes_nothing(
    mlflow_store, tmp_path, unique_model_name
):
    path = tmp_path / "sparse.csv"
    path.write_text("x,price\n" + "".join(f"{i},{i * 2}\n" for i in range(8)) + "".join(f"{i},\n" for i in range(30)))

    with pytest.raises(CommandError, match=r"8 row\(s\) with a value in 'price' \(30 of 38 have none\)"):
        call_command("train", csv=str(path), target="price", name=unique_model_name)

    assert _versions(unique_model_name) == []


def test_drift_tests_the_other_features_of_a_model_with_a_date(mlflow_store, tmp_path, unique_model_name):
    path = tmp_path / "houses.csv"
    _houses().to_csv(path, index=False)
    mv = model_train(csv=path, target="price", name=unique_model_name).model_version
    window = _houses(n_rows=300, seed=12).drop(columns="price")

    result = drift_compute(profile=mv.profile, window=window)

    tested = {feature.feature for feature in result.features}
    assert "listed_on" not in tested and {"area_m2", "district"} <= tested

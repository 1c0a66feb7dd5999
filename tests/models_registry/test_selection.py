"""Model selection: candidates cross-validated on the training split only, the best refit, recorded everywhere."""

import mlflow
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn import datasets
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from models_registry import mlflow_access, selection, trust
from models_registry.dates import parts_for
from models_registry.demo_data import churn_frame, housing_frame
from models_registry.profile import profile_build
from models_registry.row_scorer import row_scorer_build
from models_registry.training import model_train, training_data_prepare


def _wine_csv(tmp_path):
    bunch = datasets.load_wine(as_frame=True)  # a file shipped with scikit-learn, not a download
    frame = bunch.frame.rename(columns={"target": "cultivar"})
    frame["cultivar"] = "class_" + frame["cultivar"].astype(str)
    path = tmp_path / "wine.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.django_db
def test_the_trainer_tries_every_candidate_and_records_the_choice(
    mlflow_store, tmp_path, unique_model_name, all_candidates
):
    path = _wine_csv(tmp_path)

    mv = model_train(csv=path, target="cultivar", name=unique_model_name).model_version

    chosen = mv.params["selection"]
    assert [c["name"] for c in chosen["candidates"]] == [c.name for c in selection.CANDIDATES]
    assert all(c["status"] == "scored" and len(c["fold_scores"]) == chosen["folds"] for c in chosen["candidates"])
    assert chosen["folds"] == selection.FEW_ROWS_FOLDS  # 142 training rows: the small-file folds
    assert chosen["rows"] == mv.n_train_rows  # cross-validated on the training split only
    best = max(chosen["candidates"], key=lambda c: c["cv_mean"])
    assert chosen["chosen"] == best["name"] and best["label"] in chosen["reason"]
    pipeline = trust.trusted_pipeline_load(name=mv.name, version=mv.version, record=mv)
    assert mv.estimator == type(pipeline.named_steps["model"]).__name__
    # The run says the same.
    run = mlflow_access.client().get_run(mv.run_id)
    assert run.data.params["selection.chosen"] == chosen["chosen"]
    assert run.data.tags["mlapp.selection"] == chosen["reason"]
    for c in chosen["candidates"]:
        assert run.data.metrics[f"cv_{chosen['metric']}.{c['name']}"] == pytest.approx(c["cv_mean"])
        assert f"cv_seconds.{c['name']}" in run.data.metrics
    assert mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/selection.json") == chosen
    # The output's drift reference: the test split's answers and the chosen candidate's out-of-fold ones.
    assert mv.profile["prediction_reference"]["n"] == mv.n_test_rows + mv.n_train_rows


@pytest.mark.django_db
def test_the_version_page_says_which_candidates_were_tried_and_why(
    mlflow_store, tmp_path, unique_model_name, user_client, all_candidates
):
    mv = model_train(csv=_wine_csv(tmp_path), target="cultivar", name=unique_model_name).model_version

    page = user_client.get(f"/models/{mv.name}/versions/{mv.version}/").content.decode()

    assert "How this model was chosen" in page
    for candidate in selection.CANDIDATES:
        assert candidate.label in page
    assert mv.params["selection"]["reason"].split(":")[0] in page
    assert "chosen</span>" in page


def test_the_metric_is_named_per_task_and_balance():
    assert selection.metric_choose("regression", pd.Series([1.0, 2.0])).name == "rmse"
    assert selection.metric_choose("classification", pd.Series(["a"] * 50 + ["b"] * 40)).name == "accuracy"
    unbalanced = selection.metric_choose("classification", pd.Series(["a"] * 90 + ["b"] * 10))
    assert unbalanced.name == "f1_macro" and "unbalanced" in unbalanced.why


def test_the_time_budget_skips_the_candidates_it_has_no_time_for(all_candidates):
    frame = churn_frame(n_rows=300, seed=4)
    x, y = frame.drop(columns="churned"), frame["churned"]
    numeric = [c for c in x.columns if x[c].dtype.kind in "if"]
    categorical = [c for c in x.columns if c not in numeric]
    ticks = iter(range(0, 10_000, 100))  # every clock reading is 100 s later

    result = selection.model_select(
        task="classification",
        x=x,
        y=y,
        numeric=numeric,
        categorical=categorical,
        budget_seconds=250,
        clock=lambda: next(ticks),
    )

    statuses = [c["status"] for c in result.candidates]
    assert statuses[0] == "scored" and set(statuses[1:]) == {"skipped"}
    assert result.chosen == selection.HGB
    assert "not tried within the time budget" in result.reason
    assert "time budget of 250 s" in result.candidates[1]["note"]


def test_cross_validation_runs_on_a_sample_of_a_large_training_split():
    frame = churn_frame(n_rows=1500, seed=4)
    x, y = frame.drop(columns="churned"), frame["churned"]
    numeric = [c for c in x.columns if x[c].dtype.kind in "if"]
    categorical = [c for c in x.columns if c not in numeric]

    result = selection.model_select(
        task="classification",
        x=x,
        y=y,
        numeric=numeric,
        categorical=categorical,
        max_rows=400,
        candidates=(selection.LINEAR, selection.HGB),
    )

    assert (result.rows, result.rows_in_training_split) == (400, 1500)


def _dated_frame(n_rows=300, seed=0):
    frame = housing_frame(n_rows=n_rows, seed=seed)
    days = np.random.default_rng(seed).integers(0, 1500, n_rows)
    frame["listed"] = (pd.Timestamp("2021-01-01") + pd.to_timedelta(days, unit="D")).strftime("%Y-%m-%d")
    frame.loc[frame.index[::17], "listed"] = None
    return frame


@pytest.mark.parametrize("candidate", [c.name for c in selection.CANDIDATES])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_every_candidate_saves_and_loads_with_exactly_the_trusted_types_and_serves(tmp_path, candidate, task):
    """skops with SKOPS_TRUSTED_TYPES, no other trust; the fast path matches scikit-learn or is off."""
    frame = _dated_frame()
    if task == "classification":
        frame["price"] = np.where(frame["price"] > frame["price"].median(), "high", "low")
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    data = training_data_prepare(csv=path, target="price", task=task, source_name="data.csv")
    assert data.dates == {"listed": parts_for(False)}
    pipeline = selection.candidate_pipeline(
        candidate, task=task, numeric=data.numeric, categorical=data.categorical, dates=data.dates
    )
    pipeline.fit(data.features, data.target)

    dumped = skops.io.dumps(pipeline)
    assert set(skops.io.get_untrusted_types(data=dumped)) <= set(mlflow_access.SKOPS_TRUSTED_TYPES)
    loaded = skops.io.loads(dumped, trusted=mlflow_access.SKOPS_TRUSTED_TYPES)
    assert np.array_equal(loaded.predict(data.features), pipeline.predict(data.features))

    profile = profile_build(
        features=data.features,
        target="price",
        task=task,
        classes=[str(c) for c in pipeline.classes_] if task == "classification" else None,
        reference_predictions=pd.Series(pipeline.predict(data.features)),
        dates=data.dates,
    )
    scorer = row_scorer_build(loaded, profile)
    if candidate == selection.FOREST:
        assert scorer is None  # no fast path: served by scikit-learn
        return
    assert scorer is not None
    records = data.features.head(40).astype(object).where(data.features.head(40).notna(), None).to_dict("records")
    probabilities, outputs = scorer.predict(records)
    if task == "regression":
        assert np.allclose(outputs, pipeline.predict(data.features.head(40)), rtol=1e-9)
    else:
        assert np.allclose(probabilities, pipeline.predict_proba(data.features.head(40)), rtol=1e-9)
        assert list(outputs) == list(pipeline.predict(data.features.head(40)))


@pytest.mark.django_db
def test_the_chosen_model_matches_or_beats_both_baselines_on_a_bundled_data_set(
    mlflow_store, tmp_path, unique_model_name, all_candidates
):
    """The acceptance on a small set (bench/training.py prints it for every data set)."""
    bunch = datasets.load_breast_cancer(as_frame=True)
    frame = bunch.frame.rename(columns={"target": "diagnosis"})
    frame["diagnosis"] = frame["diagnosis"].map({0: "malignant", 1: "benign"})
    path = tmp_path / "cancer.csv"
    frame.to_csv(path, index=False)

    mv = model_train(csv=path, target="diagnosis", name=unique_model_name).model_version

    data = training_data_prepare(csv=path, target="diagnosis", task=None, source_name="cancer.csv")
    x_train, x_test, y_train, y_test = train_test_split(
        data.features, data.target, test_size=0.2, random_state=42, stratify=data.target
    )
    metric = selection.metric_choose("classification", data.target)
    for baseline in ("hgb_defaults", "linear"):
        if baseline == "hgb_defaults":
            columns = selection._columns(numeric=data.numeric, categorical=[], dates={}, number_steps=[])
            pipeline = Pipeline([("preprocess", columns), ("model", HistGradientBoostingClassifier())])
        else:
            pipeline = selection.candidate_pipeline(
                "linear", task="classification", numeric=data.numeric, categorical=[]
            )
        pipeline.fit(x_train, y_train)
        assert mv.metrics[metric.name] >= metric.score(y_test, pipeline.predict(x_test)) - 0.005, baseline


@pytest.mark.django_db
def test_one_configured_candidate_is_trained_without_cross_validation(mlflow_store, churn_csv, unique_model_name):
    mv = model_train(csv=churn_csv, target="churned", name=unique_model_name).model_version

    chosen = mv.params["selection"]
    assert chosen["chosen"] == selection.HGB and chosen["folds"] == 0
    assert "only candidate configured" in chosen["reason"]
    assert mv.profile["prediction_reference"]["n"] == mv.n_test_rows  # no folds: the test split alone


def test_the_settings_name_the_candidates_selection_has(settings):
    assert tuple(c.name for c in selection.CANDIDATES) == settings.TRAIN_CANDIDATE_NAMES

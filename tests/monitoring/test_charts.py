"""Chart builders: figures that read well at the edges (a first report)."""

import json
import re
from datetime import UTC, datetime

from monitoring import charts


def _figure(html: str) -> dict:
    """The figure plotly.js is given: Plotly.newPlot(id, data, layout, config)."""
    args = re.search(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*(\[.*\]),\s*(\{.*\}),\s*\{", html, re.S)
    return {"data": json.loads(args.group(1)), "layout": json.loads(args.group(2))}


def test_a_single_report_gets_an_hour_either_side_and_visible_thresholds():
    at = datetime(2026, 12, 1, 5, 54, 31, tzinfo=UTC)
    history = [
        {
            "created_at": at,
            "drifted": False,
            "effect_size": 0.014,
            "effect_name": "wasserstein_norm",
            "effect_threshold": 0.1,
            "p_value": 0.99,
            "p_threshold": 0.05,
        }
    ]

    figure = _figure(charts.feature_history(history))

    assert figure["layout"]["xaxis"]["range"] == ["2026-12-01T04:54:31", "2026-12-01T06:54:31"]
    thresholds = [t for t in figure["data"] if t["name"] in ("effect threshold", "p-value threshold")]
    assert [len(t["x"]) for t in thresholds] == [2, 2]


def test_several_reports_keep_plotly_autorange():
    history = [
        {
            "created_at": datetime(2026, 12, 1, hour, tzinfo=UTC),
            "drifted": hour == 7,
            "effect_size": 0.05 * hour,
            "effect_name": "psi",
            "effect_threshold": 0.2,
            "p_value": None,
            "p_threshold": None,
        }
        for hour in (5, 6, 7)
    ]

    figure = _figure(charts.feature_history(history))

    assert "range" not in figure["layout"]["xaxis"]
    assert len(next(t for t in figure["data"] if t["name"] == "effect threshold")["x"]) == 3


def test_a_first_report_shows_each_feature_as_a_point_on_the_overview():
    at = datetime(2026, 12, 1, 5, 54, tzinfo=UTC)
    history = [
        {"created_at": at, "feature": name, "effect_size": 0.02, "drifted": False, "effect_threshold": 0.1}
        for name in ("age", "region")
    ]
    shares = [{"created_at": at, "drifted_share": 0.0, "dataset_drift": False, "drift_share_threshold": 0.5}]

    figure = _figure(charts.drift_overview_history(history, shares))

    features = [t for t in figure["data"] if t["name"] in ("age", "region")]
    assert [t["mode"] for t in features] == ["markers", "markers"]
    assert figure["layout"]["xaxis"]["range"] == ["2026-12-01T04:54:00", "2026-12-01T06:54:00"]


def test_prediction_volume_spans_the_window_asked_for():
    since, until = datetime(2026, 11, 29, 6, tzinfo=UTC), datetime(2026, 12, 1, 6, tzinfo=UTC)
    points = [{"time": datetime(2026, 12, 1, 5, tzinfo=UTC), "model_version": 1, "n": 6000}]

    figure = _figure(charts.predictions_volume(points, bucket="hour", window=(since, until)))

    assert figure["layout"]["xaxis"]["range"] == ["2026-11-29T06:00:00", "2026-12-01T06:00:00"]

    running_hour = [{"time": datetime(2026, 12, 1, 6, tzinfo=UTC), "model_version": 1, "n": 10}]
    later = _figure(charts.predictions_volume(running_hour, bucket="hour", window=(since, until)))
    assert later["layout"]["xaxis"]["range"][1] == "2026-12-01T07:00:00"  # the running hour is shown whole
    assert figure["data"][0]["width"] == 0.9 * 3_600_000 and figure["data"][0]["offset"] == 0  # the bar spans its hour

"""Plotly figures of the dashboards, built in Python from plain data.

Each builder takes what a selector returned and answers an HTML fragment
(``fig.to_html(full_html=False, include_plotlyjs=False)``); the page loads
plotly.min.js once, from our static files. Builders never query the database.

They run in the request, so they are written for speed: series go in as numpy
arrays (plotly validates and copies a Python list element by element, and ships
a numpy array as one base64 block), per-point colours become a second trace, no
named template is copied into each figure, and two-row charts use axis domains
rather than `make_subplots`. A figure costs a few milliseconds, not tens.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import plotly.graph_objects as go

ACCENT = "#2f6fde"
REFERENCE = "#9aa3b5"
BAD = "#c53030"
OK = "#1a7f4b"
GRID = "#eef0f4"
LINE = "#d5d9e0"
PALETTE = ["#2f6fde", "#e07b39", "#1a7f4b", "#8e44ad", "#c53030", "#b7791f", "#17a2b8", "#6b7280"]
P_VALUE_FLOOR = 1e-10
PREDICTION = "__prediction__"  # the model output's row in a drift report
CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}


def _num(values) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=float)


def _time(values) -> np.ndarray:
    """Aware datetimes → naive UTC datetime64 (what plotly draws; the pages say UTC)."""
    return np.array(
        [v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) else v for v in values],
        dtype="datetime64[us]",
    )


def _color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _render(traces: list, *, height: int = 320, title: str | None = None, **layout) -> str:
    """One figure from its traces and layout, built in one go (no relayout passes) and rendered."""
    # No named template: copying one (e.g. "plotly_white") costs ~20 ms per figure in the
    # request; plotly.js's own defaults are a white plot already, we set the few colours we want.
    axis_style = {"gridcolor": GRID, "linecolor": LINE, "zerolinecolor": LINE, "automargin": True}
    for axis in ("xaxis", "yaxis", "yaxis2"):
        if axis in layout or axis != "yaxis2":
            layout[axis] = {**axis_style, **layout.get(axis, {})}
    layout.setdefault("hovermode", "x unified")
    fig = go.Figure(
        data=traces,
        layout={
            "template": "none",
            "colorway": PALETTE,
            "paper_bgcolor": "white",
            "plot_bgcolor": "white",
            "height": height,
            "margin": {"l": 60, "r": 20, "t": 40 if title else 15, "b": 40},
            "title": {"text": title, "font": {"size": 14}} if title else None,
            "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
            "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1},
            **layout,
        },
    )
    return fig.to_html(full_html=False, include_plotlyjs=False, config=CONFIG)


SINGLE_POINT_SPAN = np.timedelta64(1, "h")


def _x_range_around_one_time(x: np.ndarray) -> list | None:
    """With one distinct time, plotly zooms to milliseconds: show an hour either side instead."""
    distinct = np.unique(x[~np.isnat(x)]) if len(x) else x
    if len(distinct) != 1:
        return None
    return [distinct[0] - SINGLE_POINT_SPAN, distinct[0] + SINGLE_POINT_SPAN]


def _threshold_xy(x: np.ndarray, y: np.ndarray) -> dict:
    """A threshold's line; at a single time it spans the padded axis (else it would not show)."""
    span = _x_range_around_one_time(x)
    if span is None:
        return {"x": x, "y": y}
    return {"x": np.array(span, dtype="datetime64[us]"), "y": np.repeat(y[:1], 2)}


def _two_rows(split: float, *, times: np.ndarray) -> dict:
    """Layout of two stacked plots sharing a time axis: traces with yaxis="y" on top, "y2" below."""
    span = _x_range_around_one_time(times)
    return {
        "xaxis": {"anchor": "free", "position": 0, **({"range": span} if span else {})},
        "yaxis": {"domain": [split + 0.08, 1.0]},
        "yaxis2": {"domain": [0.0, split], "anchor": "x"},
    }


def _drifted_markers(x: np.ndarray, y: np.ndarray, drifted: np.ndarray, *, yaxis: str = "y", size: int = 8):
    """Red markers over the points that drifted (one trace: cheaper than a colour per point)."""
    return go.Scatter(
        x=x[drifted],
        y=y[drifted],
        mode="markers",
        name="drifted",
        marker={"color": BAD, "size": size},
        yaxis=yaxis,
        showlegend=False,
        hoverinfo="skip",
    )


BUCKET_MILLISECONDS = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000}


def predictions_volume(
    points: list[dict], *, bucket: str, window=None, title: str | None = None, height: int = 320
) -> str:
    """Stacked bars: predictions per bucket ("minute", "hour", "day"), one colour per model version.

    Each bar spans its bucket; `window` (since, until) sets the time axis, so a few
    buckets of data still read as "in the last 48 hours" instead of one bar zoomed to fill the chart.
    """
    traces = []
    for i, version in enumerate(sorted({p["model_version"] for p in points})):
        mine = [p for p in points if p["model_version"] == version]
        traces.append(
            go.Bar(
                x=_time(p["time"] for p in mine),
                y=_num(p["n"] for p in mine),
                name=f"v{version}",
                marker_color=_color(i),
                # From the bucket's start, its width in ms: plotly's automatic width comes
                # from the spacing between bars, which a lone bar does not have.
                width=BUCKET_MILLISECONDS[bucket] * 0.9,
                offset=0,
            )
        )
    xaxis = {}
    if window and None not in window:
        start, end = _time(window)
        if points:  # the running bucket is shown whole, not cut at "now"
            last = _time([max(p["time"] for p in points)])[0]
            end = max(end, last + np.timedelta64(BUCKET_MILLISECONDS[bucket], "ms"))
        xaxis = {"range": [start, end]}
    return _render(
        traces,
        height=height,
        title=title,
        barmode="stack",
        xaxis=xaxis,
        yaxis={"title": {"text": "predictions"}},
        showlegend=True,
    )


def predictions_distribution(points: list[dict], *, task: str | None, title: str | None = None) -> str:
    """Classification: share of each predicted label per bucket; regression: mean ± std with a min-max band."""
    traces = []
    versions = sorted({p["model_version"] for p in points})
    several = len(versions) > 1
    if task == "regression":
        for i, version in enumerate(versions):
            mine = [p for p in points if p["model_version"] == version and p["value_mean"] is not None]
            x = _time(p["time"] for p in mine)
            prefix = f"v{version} " if several else ""
            traces += [
                go.Scatter(
                    x=x,
                    y=_num(p["value_max"] for p in mine),
                    mode="lines",
                    line={"width": 0},
                    showlegend=False,
                    name=f"{prefix}max",
                    hoverinfo="skip",
                ),
                go.Scatter(
                    x=x,
                    y=_num(p["value_min"] for p in mine),
                    mode="lines",
                    line={"width": 0},
                    fill="tonexty",
                    fillcolor="rgba(47,111,222,0.12)" if i % 2 == 0 else "rgba(224,123,57,0.12)",
                    name=f"{prefix}min–max",
                    hoverinfo="skip",
                ),
                go.Scatter(
                    x=x,
                    y=_num(p["value_mean"] for p in mine),
                    mode="lines+markers",
                    name=f"{prefix}mean",
                    line={"color": _color(i)},
                    error_y={
                        "type": "data",
                        "array": _num(p["value_std"] for p in mine),
                        "visible": True,
                        "thickness": 1,
                    },
                ),
            ]
        return _render(traces, title=title, yaxis={"title": {"text": "predicted value"}})
    labels = sorted({label for p in points for label in (p["labels"] or {})})
    for v_index, version in enumerate(versions):
        mine = [p for p in points if p["model_version"] == version and p["n"]]
        x = _time(p["time"] for p in mine)
        for l_index, label in enumerate(labels):
            traces.append(
                go.Scatter(
                    x=x,
                    y=_num((p["labels"] or {}).get(label, 0) / p["n"] for p in mine),
                    mode="lines+markers",
                    name=f"v{version} · {label}" if several else label,
                    line={"color": _color(l_index), "dash": "solid" if v_index == 0 else "dot"},
                )
            )
    return _render(
        traces,
        title=title,
        yaxis={"title": {"text": "share of predictions"}, "tickformat": ".0%", "range": [0, 1]},
    )


def distribution(dist: dict, *, title: str | None = None, drifted: bool = False, height: int = 340) -> str:
    """Served values against the training distribution, on the bins the drift job stored."""
    served_color = BAD if drifted else ACCENT
    shares_axis = {"title": {"text": "share of rows"}, "tickformat": ".0%"}
    if dist.get("kind") == "numeric":
        edges = np.asarray(dist["edges"], dtype=float)
        centers, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        ranges = np.array([f"{a:.4g} – {b:.4g}" for a, b in zip(edges[:-1], edges[1:], strict=True)], dtype=object)
        traces = [
            go.Bar(
                x=centers,
                y=_num(shares),
                width=widths,
                name=name,
                marker_color=color,
                opacity=opacity,
                customdata=ranges,
                hovertemplate=f"%{{customdata}}: %{{y:.1%}}<extra>{name}</extra>",
            )
            for name, shares, color, opacity in (
                ("training", dist["reference"], REFERENCE, 0.65),
                ("served", dist["window"], served_color, 0.55),
            )
        ]
        return _render(
            traces, height=height, title=title, barmode="overlay", bargap=0, yaxis=shares_axis, hovermode="closest"
        )
    categories = list(dist.get("categories") or [])
    traces = [
        go.Bar(x=categories, y=_num(dist.get("reference") or []), name="training", marker_color=REFERENCE),
        go.Bar(x=categories, y=_num(dist.get("window") or []), name="served", marker_color=served_color),
    ]
    return _render(traces, height=height, title=title, barmode="group", yaxis=shares_axis)


def feature_history(history: list[dict], *, title: str | None = None) -> str:
    """Effect size (top) and p-value (bottom, log scale) per report, each with its threshold dashed."""
    x = _time(h["created_at"] for h in history)
    drifted = np.array([bool(h["drifted"]) for h in history], dtype=bool)
    effect = _num(h["effect_size"] for h in history)
    p_values = _num(h["p_value"] for h in history)
    # Tiny p-values (1e-150) would flatten the axis: drawn at P_VALUE_FLOOR, exact in the hover.
    shown_p = np.where(np.isnan(p_values), np.nan, np.maximum(p_values, P_VALUE_FLOOR))
    effect_name = next((h["effect_name"] for h in history if h["effect_name"]), "effect size")
    traces = [
        go.Scatter(x=x, y=effect, mode="lines+markers", name=effect_name, line={"color": ACCENT}, yaxis="y"),
        _drifted_markers(x, effect, drifted, yaxis="y", size=8),
        go.Scatter(
            **_threshold_xy(x, _num(h["effect_threshold"] for h in history)),
            mode="lines",
            name="effect threshold",
            line={"color": BAD, "dash": "dash", "width": 1.5},
            yaxis="y",
        ),
        go.Scatter(
            x=x,
            y=shown_p,
            mode="lines+markers",
            name="p-value",
            line={"color": "#8e44ad"},
            customdata=p_values,
            hovertemplate="p = %{customdata:.3g}",
            yaxis="y2",
        ),
        _drifted_markers(x, shown_p, drifted, yaxis="y2", size=7),
        go.Scatter(
            **_threshold_xy(x, _num(h["p_threshold"] for h in history)),
            mode="lines",
            name="p-value threshold",
            line={"color": BAD, "dash": "dot", "width": 1.5},
            yaxis="y2",
        ),
    ]
    layout = _two_rows(0.4, times=x)
    layout["yaxis"].update(title={"text": effect_name}, rangemode="tozero")
    layout["yaxis2"].update(
        title={"text": "p-value"},
        type="log",
        range=[math.log10(P_VALUE_FLOOR) - 0.3, 0.2],
        dtick=2,
        exponentformat="power",
    )
    return _render(traces, height=440, title=title, **layout)


def drift_overview_history(history: list[dict], share_history: list[dict], *, title: str | None = None) -> str:
    """Effect size of every feature per report (one line each, × = drifted), and the drifted share."""
    traces = []
    for i, feature in enumerate(sorted({h["feature"] for h in history})):
        mine = [h for h in history if h["feature"] == feature]
        x = _time(h["created_at"] for h in mine)
        y = _num(h["effect_size"] for h in mine)
        drifted = np.array([bool(h["drifted"]) for h in mine], dtype=bool)
        name = "predictions" if feature == PREDICTION else feature
        traces += [
            go.Scatter(
                x=x,
                y=y,
                mode="lines" if len(x) > 1 else "markers",  # a lone point drawn as a line does not show
                name=name,
                legendgroup=name,
                line={"color": _color(i), "width": 1.5},
                yaxis="y",
            ),
            go.Scatter(
                x=x[drifted],
                y=y[drifted],
                mode="markers",
                name=f"{name} drifted",
                legendgroup=name,
                showlegend=False,
                marker={"color": _color(i), "symbol": "x", "size": 8},
                yaxis="y",
            ),
        ]
    thresholds = [h["effect_threshold"] for h in history if h["effect_threshold"] is not None]
    if thresholds:
        usual = max(set(thresholds), key=thresholds.count)
        traces.append(
            go.Scatter(
                **_threshold_xy(_time([history[0]["created_at"], history[-1]["created_at"]]), _num([usual, usual])),
                mode="lines",
                name="effect threshold",
                line={"color": BAD, "dash": "dash", "width": 1.5},
                yaxis="y",
            )
        )
    x = _time(p["created_at"] for p in share_history)
    share = _num(p["drifted_share"] for p in share_history)
    dataset_drift = np.array([bool(p["dataset_drift"]) for p in share_history], dtype=bool)
    traces += [
        go.Scatter(
            x=x, y=share, mode="lines+markers", name="drifted share", line={"color": OK, "shape": "hv"}, yaxis="y2"
        ),
        _drifted_markers(x, share, dataset_drift, yaxis="y2", size=8),
        go.Scatter(
            **_threshold_xy(x, _num(p["drift_share_threshold"] for p in share_history)),
            mode="lines",
            name="dataset drift threshold",
            line={"color": BAD, "dash": "dot", "width": 1.5},
            yaxis="y2",
        ),
    ]
    layout = _two_rows(0.32, times=x)
    layout["yaxis"].update(title={"text": "effect size"}, rangemode="tozero")
    layout["yaxis2"].update(title={"text": "drifted share"}, tickformat=".0%", range=[0, 1.05])
    return _render(traces, height=480, title=title, hovermode="closest", **layout)


def performance(points: list[dict], *, task: str | None, title: str | None = None) -> str:
    """Accuracy and macro F1 (classification) or MAE and RMSE (regression) per bucket and version."""
    traces = []
    metrics = ("mae", "rmse") if task == "regression" else ("accuracy", "f1_macro")
    for v_index, version in enumerate(sorted({p["model_version"] for p in points})):
        mine = [p for p in points if p["model_version"] == version]
        x = _time(p["time"] for p in mine)
        traces.append(
            go.Bar(
                x=x,
                y=_num(p["n_feedback"] for p in mine),
                name=f"v{version} feedback rows",
                marker_color=REFERENCE,
                opacity=0.35,
                yaxis="y2",
            )
        )
        traces += [
            go.Scatter(
                x=x,
                y=_num(p.get(metric) for p in mine),
                mode="lines+markers",
                name=f"v{version} {metric.replace('_', ' ')}",
                line={"color": _color(v_index), "dash": "solid" if m_index == 0 else "dash"},
                yaxis="y",
            )
            for m_index, metric in enumerate(metrics)
        ]
    primary = (
        {"title": {"text": "error"}, "rangemode": "tozero"}
        if task == "regression"
        else {"title": {"text": "score"}, "range": [0, 1.02], "tickformat": ".0%"}
    )
    secondary = {
        "title": {"text": "rows with feedback"},
        "overlaying": "y",
        "side": "right",
        "showgrid": False,
        "rangemode": "tozero",
        "tickmode": "auto",
        "nticks": 6,
    }
    return _render(traces, height=360, title=title, yaxis=primary, yaxis2=secondary)


def bad_share(files: list[dict], *, threshold: float | None = None, title: str | None = None) -> str:
    """Bad-row share of each ingested file over time (files quarantined whole in red)."""
    x = _time(f["time"] for f in files)
    whole = np.array([f["status"] == "quarantined" for f in files], dtype=bool)
    y = _num(1.0 if f["status"] == "quarantined" else f["bad_share"] for f in files)
    details = np.array(
        [[f["original_name"], f["rows_in"], f["rows_bad"], f["status"]] for f in files], dtype=object
    ).reshape(len(files), 4)
    traces = [
        go.Scatter(
            x=x,
            y=y,
            mode="markers+lines",
            line={"color": REFERENCE, "width": 1},
            marker={"color": ACCENT, "size": 7},
            customdata=details,
            hovertemplate="%{customdata[0]}<br>%{customdata[2]} of %{customdata[1]} rows bad (%{y:.1%})"
            "<br>%{customdata[3]}<extra></extra>",
            name="bad-row share",
        ),
        _drifted_markers(x, y, whole, size=8),
    ]
    if threshold is not None and len(files):
        traces.append(
            go.Scatter(
                x=x[[0, -1]],
                y=_num([threshold, threshold]),
                mode="lines",
                name="alert threshold",
                line={"color": BAD, "dash": "dash", "width": 1.5},
            )
        )
    return _render(
        traces,
        title=title,
        yaxis={"title": {"text": "bad rows"}, "tickformat": ".0%", "range": [0, 1.05]},
        hovermode="closest",
        showlegend=False,
    )


def issues_by_rule(issues: list[dict], *, title: str | None = None) -> str:
    """Rows failing each validation rule, per day (stacked)."""
    traces = []
    for i, rule in enumerate(sorted({item["rule"] for item in issues})):
        mine = [item for item in issues if item["rule"] == rule]
        traces.append(
            go.Bar(
                x=_time(item["time"] for item in mine),
                y=_num(item["rows"] for item in mine),
                name=rule,
                marker_color=_color(i),
            )
        )
    return _render(traces, title=title, barmode="stack", yaxis={"title": {"text": "rows with the issue"}})


def variant_distributions(
    production: list,
    challenger: list,
    *,
    task: str | None,
    challenger_name: str = "challenger",
    title: str | None = None,
) -> str:
    """Production's and the challenger's predictions side by side: label shares, or value histograms
    on shared bins (the comparison page, predictions/experiments.py)."""
    shares_axis = {"title": {"text": "share of predictions"}, "tickformat": ".0%"}
    if task == "regression":
        a, b = np.asarray(production, dtype=float), np.asarray(challenger, dtype=float)
        both = np.concatenate([a, b])
        edges = np.histogram_bin_edges(both, bins=min(40, max(5, int(math.sqrt(len(both))))))
        centers, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        traces = [
            go.Bar(
                x=centers,
                y=np.histogram(values, bins=edges)[0] / max(len(values), 1),
                width=widths,
                name=name,
                marker_color=color,
                opacity=0.55,
                hovertemplate=f"%{{x:.4g}}: %{{y:.1%}}<extra>{name}</extra>",
            )
            for name, values, color in (("production", a, ACCENT), (challenger_name, b, PALETTE[1]))
        ]
        return _render(
            traces,
            title=title,
            barmode="overlay",
            bargap=0,
            yaxis=shares_axis,
            xaxis={"title": {"text": "predicted value"}},
            hovermode="closest",
        )
    labels = sorted({str(v) for v in production} | {str(v) for v in challenger})
    traces = []
    for name, values, color in (("production", production, ACCENT), (challenger_name, challenger, PALETTE[1])):
        counts = dict.fromkeys(labels, 0)
        for value in values:
            counts[str(value)] += 1
        total = max(len(values), 1)
        traces.append(
            go.Bar(x=labels, y=np.array([counts[label] / total for label in labels]), name=name, marker_color=color)
        )
    return _render(traces, title=title, barmode="group", yaxis=shares_axis, hovermode="closest")

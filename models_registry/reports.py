"""What a training did, for people: the data report and the model selection, as lines and rows.

Stored with the version (``ModelVersion.params["data_report"]`` and ``["selection"]``,
the run's ``data_report.json`` and ``selection.json``); the `train` command, the
version page and the training job page all show them through these functions.
"""

from __future__ import annotations

from .csv_reader import delimiter_name
from .dates import parts_text


def data_report_lines(report: dict, *, target: str) -> list[str]:
    """One line per fact: rows read, rows dropped for a missing target, columns left out, dates used."""
    if not report:
        return []
    lines = [f"read {report.get('rows_read', 0)} row(s), {delimiter_name(report.get('delimiter', ','))}-separated"]
    without = report.get("rows_without_target", 0)
    if without:
        lines.append(f"dropped {without} row(s) without a value in {target!r}")
    left_out = report.get("columns_left_out") or []
    if left_out:
        listed = ", ".join(f"{d['column']} ({d['reason']})" for d in left_out)
        lines.append(f"left out {len(left_out)} column(s): {listed}")
    for name, parts in (report.get("date_features") or {}).items():
        lines.append(f"date column {name} used as {parts_text(parts)}")
    return lines


def selection_lines(selection: dict) -> list[str]:
    """The candidates tried (CV score, time) and why the chosen one won."""
    if not selection:
        return []
    metric = selection.get("metric", "")
    lines = []
    for entry in selection.get("candidates", []):
        mark = "*" if entry["name"] == selection.get("chosen") else " "
        if entry.get("status") == "scored":
            lines.append(
                f"{mark} {entry['label']}: cv {metric} {entry['cv_mean']:.4f} ± {entry['cv_std']:.4f} "
                f"({entry['seconds']:.1f} s)"
            )
        else:
            lines.append(f"{mark} {entry['label']}: {entry.get('status')} ({entry.get('note', '')})")
    lines.append(f"chosen: {selection.get('reason', '')}")
    return lines


def version_training_report(model_version) -> dict:
    """For the pages: {"data": [lines], "selection": dict or {}}."""
    params = model_version.params or {}
    return {
        "data": data_report_lines(params.get("data_report") or {}, target=model_version.target),
        "selection": params.get("selection") or {},
    }

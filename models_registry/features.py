"""Turning inputs into the DataFrame a model expects, from its profile.

Training, the REST API, the web form, batch files and the scheduled job all
build model input here, so a column is typed the same way everywhere.
"""

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from .profile import NUMERIC


def frame_coerce(frame: pd.DataFrame, *, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Numbers as float64, categories as Python strings with missing values as None."""
    out = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        if column in numeric:
            out[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        elif column in categorical:
            values = frame[column]
            out[column] = pd.Series(np.where(values.isna(), None, values.astype(str)), index=frame.index, dtype=object)
    return out


def profile_columns(profile: dict) -> tuple[list[str], list[str]]:
    numeric = [f["name"] for f in profile["features"] if f["kind"] == NUMERIC]
    categorical = [f["name"] for f in profile["features"] if f["kind"] != NUMERIC]
    return numeric, categorical


def frame_for_model(frame: pd.DataFrame, profile: dict) -> pd.DataFrame:
    """Select the model's features, in training order, typed as in training."""
    numeric, categorical = profile_columns(profile)
    ordered = [f["name"] for f in profile["features"]]
    return frame_coerce(frame.reindex(columns=ordered), numeric=numeric, categorical=categorical)


def frame_from_records(records: Iterable[Mapping], profile: dict) -> pd.DataFrame:
    """Rows given as dicts (already validated) → model input."""
    ordered = [f["name"] for f in profile["features"]]
    return frame_for_model(pd.DataFrame.from_records(list(records), columns=ordered), profile)

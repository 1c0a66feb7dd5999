"""Date and datetime columns: how one is recognised, read and turned into features.

One definition, used by every path: training recognises a date column
(`is_date_column`), the profile records it as a ``datetime`` feature with the
parts it was trained on, the rule table checks that a value reads as a date
(`date_parse`), the model pipeline derives the parts (`DateParts`, a step of the
fitted pipeline, so the MLflow model takes the date itself), and the row scorer
derives them with the same function (`date_parts_row`).

A date is ISO 8601 text, as `datetime.fromisoformat` reads it: ``2024-03-05``,
``2024-03-05 14:30``, ``2024-03-05T14:30:00+02:00`` (a time zone is converted to
UTC). The parts are year, month, day of month and day of week (Monday 0); a
column whose training values carry a time of day also gets hour and minute.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

DATETIME = "datetime"
DATE_PARTS = ("year", "month", "day", "dayofweek")
TIME_PARTS = ("hour", "minute")
PART_LABELS = {
    "year": "year",
    "month": "month",
    "day": "day of month",
    "dayofweek": "day of week",
    "hour": "hour",
    "minute": "minute",
}
# Shortest text taken as a date ("2024-3-5" is not ISO; "20240305" is, but such a column reads as numbers).
MIN_DATE_CHARS = 8
DATE_EXAMPLE = "an ISO 8601 date such as 2024-03-05 or 2024-03-05 14:30"


@lru_cache(maxsize=65536)
def _parse_text(text: str) -> datetime | None:
    text = text.strip()
    if len(text) < MIN_DATE_CHARS or not text[:4].isdigit():
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def date_parse(value) -> datetime | None:
    """The date a value stands for, or None (missing, or not ISO 8601 date text)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or not isinstance(value, str):
        return None
    return _parse_text(value)


def _parts(value: datetime, parts: tuple[str, ...]) -> tuple[float, ...]:
    every = {
        "year": value.year,
        "month": value.month,
        "day": value.day,
        "dayofweek": value.weekday(),
        "hour": value.hour,
        "minute": value.minute,
    }
    return tuple(float(every[part]) for part in parts)


def date_parts_row(value, parts: tuple[str, ...]) -> tuple[float, ...]:
    """One value's parts (NaN for each when missing or not a date)."""
    parsed = date_parse(value)
    return _parts(parsed, parts) if parsed is not None else (math.nan,) * len(parts)


def date_parts(values, parts: tuple[str, ...]) -> np.ndarray:
    """A column's parts, (rows, parts) float64; each distinct text is parsed once."""
    series = pd.Series(np.asarray(values, dtype=object).ravel())
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    table = np.array([date_parts_row(u, parts) for u in uniques] + [(math.nan,) * len(parts)], dtype=float)
    return table.reshape(-1, len(parts))[codes]  # code -1 (missing) takes the last row, all NaN


def is_date_column(values: pd.Series) -> tuple[bool, bool]:
    """(every present value is ISO date text, some carry a time of day) for a text column."""
    present = values.dropna()
    if present.empty or pd.api.types.is_numeric_dtype(present) or pd.api.types.is_bool_dtype(present):
        return False, False
    distinct = pd.unique(present.astype(str))
    parsed = [_parse_text(text) for text in distinct]
    if any(p is None for p in parsed):
        return False, False
    return True, any(p.hour or p.minute or p.second for p in parsed)


def parts_for(has_time: bool) -> tuple[str, ...]:
    return DATE_PARTS + TIME_PARTS if has_time else DATE_PARTS


def parts_text(parts) -> str:
    return ", ".join(PART_LABELS.get(part, part) for part in parts)


class DateParts(TransformerMixin, BaseEstimator):
    """Pipeline step: each date column becomes its parts (numbers; NaN where missing)."""

    def __init__(self, parts: tuple[str, ...] = DATE_PARTS):
        self.parts = parts

    def fit(self, X, y=None):
        columns = getattr(X, "columns", None)
        self.feature_names_in_ = np.asarray([str(c) for c in columns], dtype=object) if columns is not None else None
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=object))
        blocks = [date_parts(frame.iloc[:, j].to_numpy(dtype=object), tuple(self.parts)) for j in range(frame.shape[1])]
        return np.hstack(blocks) if blocks else np.empty((len(frame), 0))

    def get_feature_names_out(self, input_features=None):
        names = input_features if input_features is not None else self.feature_names_in_
        if names is None:
            names = [f"x{j}" for j in range(self.n_features_in_)]
        return np.asarray([f"{name}_{part}" for name in names for part in self.parts], dtype=object)

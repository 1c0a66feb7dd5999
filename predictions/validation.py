"""Input validation for serving, derived from the model's training profile.

One place for the rules, used by the REST API and the web form (`records_validate`,
row by row, every problem named) and by batch files (`frame_validate`, vectorised).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import INVALID_INPUT, ApplicationError
from models_registry.features import nul_rows
from models_registry.profile import NUMERIC, FeatureSpec, feature_specs


@dataclass(frozen=True)
class FieldError:
    row: int | None  # None: the request as a whole
    field: str | None
    problem: str

    def as_dict(self) -> dict:
        return {"row": self.row, "field": self.field, "problem": self.problem}


class InputValidationError(ApplicationError, ValueError):
    """Rows or fields that cannot be scored: each one named in `field_errors` (and `errors`, as the API shows them)."""

    def __init__(self, errors: list[FieldError]):
        super().__init__(INVALID_INPUT, errors=[error.as_dict() for error in errors])
        self.field_errors = errors
        self.description = "; ".join(_describe(e) for e in errors[:10])

    def __str__(self) -> str:
        return self.description


def _describe(error: FieldError) -> str:
    where = []
    if error.row is not None:
        where.append(f"row {error.row}")
    if error.field:
        where.append(f"field {error.field!r}")
    return f"{', '.join(where)}: {error.problem}" if where else error.problem


def specs_by_name(profile: dict) -> dict[str, FeatureSpec]:
    return {spec.name: spec for spec in feature_specs(profile)}


def _value_check(spec: FeatureSpec, value) -> tuple[object, str | None]:
    """The typed value, or a problem."""
    if value is None:
        if spec.missing_share > 0:
            return None, None
        return None, "missing value (null): this feature was never missing in training"
    if spec.kind == NUMERIC:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, f"wrong type: expected a number, got {type(value).__name__} {value!r}"[:200]
        try:
            number = float(value)
        except OverflowError:  # a JSON integer beyond float range
            return None, f"non-finite number: {str(value)[:20]}… is out of range"
        if not math.isfinite(number):
            return None, f"non-finite number {value!r}"
        return number, None
    if isinstance(value, bool):
        return str(value), None
    if isinstance(value, int):
        return str(value), None
    if isinstance(value, str):
        return value, _text_problem(value)
    return None, f"wrong type: expected a category (text), got {type(value).__name__}"


NUL_PROBLEM = "text contains a NUL character (\\u0000)"


def _printable(text: str) -> str:
    """Caller's text as it can be echoed in a JSON answer (lone surrogates escaped)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _text_problem(value: str) -> str | None:
    """Text the inference log cannot store (PostgreSQL's jsonb refuses both)."""
    if "\x00" in value:
        return NUL_PROBLEM
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "text is not valid Unicode (a lone surrogate such as \\ud800)"
    return None


def records_validate(*, records, specs: dict[str, FeatureSpec], max_rows: int) -> list[dict]:
    """Check JSON rows against the model's feature specs (`ServedModel.specs`, from its
    profile); return them typed, or raise naming every problem."""
    if not isinstance(records, list):
        raise InputValidationError([FieldError(None, None, "expected a list of rows (objects)")])
    if not records:
        raise InputValidationError([FieldError(None, None, "empty batch: send at least one row")])
    if len(records) > max_rows:
        raise InputValidationError(
            [FieldError(None, None, f"batch of {len(records)} rows is over the limit of {max_rows}")]
        )
    errors: list[FieldError] = []
    cleaned: list[dict] = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            errors.append(FieldError(index, None, "expected an object of feature values"))
            continue
        row: dict = {}
        for field in record.keys() - specs.keys():
            errors.append(FieldError(index, _printable(str(field)[:200]), "unknown feature"))
        for name, spec in specs.items():
            if name not in record:
                errors.append(FieldError(index, name, "missing feature"))
                continue
            value, problem = _value_check(spec, record[name])
            if problem:
                errors.append(FieldError(index, name, problem))
            row[name] = value
        cleaned.append(row)
    if errors:
        raise InputValidationError(sorted(errors, key=lambda e: (e.row or 0, e.field or "")))
    return cleaned


def records_unseen_categories(records: list[dict], known: dict[str, frozenset[str]]) -> list[FieldError]:
    """Categories the model never saw in training: accepted (the encoder treats them as
    unknown), but worth telling the caller, since the answer rests on the other features."""
    warnings = []
    for index, record in enumerate(records):
        for name, categories in known.items():
            value = record[name]
            if value is not None and value not in categories:
                warnings.append(
                    FieldError(index, name, f"category {value[:100]!r} was not seen in training; treated as unknown")
                )
    return warnings


def frame_missing_columns(frame: pd.DataFrame, profile: dict) -> list[str]:
    return [spec.name for spec in feature_specs(profile) if spec.name not in frame.columns]


@dataclass(frozen=True)
class FrameCheck:
    problems: pd.Series  # per row: "" when valid, else every problem of the row
    model_input: pd.DataFrame  # every row typed for the model (valid rows are the ones to score)

    @property
    def valid(self) -> np.ndarray:
        return (self.problems == "").to_numpy()


def frame_validate(frame: pd.DataFrame, profile: dict) -> FrameCheck:
    """Vectorised checks of a batch chunk (columns as read from CSV text), and the
    chunk typed for the model from the same parse (numbers as float64, categories as
    text with empty cells as None, as training reads them).

    Problems read like "age: not a number 'abc'; plan: missing value".
    """
    problems = pd.Series("", index=frame.index, dtype=object)

    def add(mask: np.ndarray, texts) -> None:
        """Record a problem for the rows in `mask`; `texts` is one text, or a function
        giving one per masked row (only called when some row has the problem)."""
        nonlocal problems
        if not mask.any():
            return
        addition = texts(mask) if callable(texts) else texts
        current = problems[mask]
        problems.loc[mask] = np.where(current == "", addition, current + "; " + addition)

    typed = {}
    for spec in feature_specs(profile):
        raw = frame[spec.name]
        text = raw.astype("string").str.strip()
        missing = (text.isna() | (text == "")).to_numpy()
        if spec.missing_share == 0:
            add(missing, f"{spec.name}: missing value")
        if spec.kind == NUMERIC:
            values = _numbers_parse(text, missing)
            not_number = (~missing) & np.isnan(values)
            add(not_number, lambda rows, text=text, name=spec.name: _not_a_number(name, text[rows]))
            non_finite = (~missing) & (~not_number) & np.isinf(values)
            add(non_finite, f"{spec.name}: non-finite number")
            typed[spec.name] = values
        else:
            add((~missing) & nul_rows(text), f"{spec.name}: {NUL_PROBLEM}")
            typed[spec.name] = pd.Series(
                np.where(missing, None, raw.to_numpy(dtype=object)), index=frame.index, dtype=object
            )
    return FrameCheck(problems=problems, model_input=pd.DataFrame(typed, index=frame.index))


def _numbers_parse(text: pd.Series, missing: np.ndarray) -> np.ndarray:
    """float64 per row; NaN where missing or not a number.

    Arrow's cast parses a clean column several times faster than `pd.to_numeric`;
    a column with anything it refuses is parsed again by pandas, row by row.
    """
    try:
        cleaned = pa.array(text.mask(missing), type=pa.string(), from_pandas=True)
        return pc.cast(cleaned, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _not_a_number(name: str, texts: pd.Series) -> np.ndarray:
    return (name + ": not a number " + texts.fillna("").str.slice(0, 40).map(repr)).to_numpy(dtype=object)

"""One rule table: a model's training profile turned into row checks, for every path.

The API, the web form, batch upload, ingestion and the drift reader all check rows
here, so a row gets the same findings wherever it arrives. Each rule is one small
object with one contract (`Rule`): which features it applies to, the check of one
typed value (the JSON API's row, a few microseconds) and the check of a column
(a batch or ingestion chunk, vectorised over pyarrow/numpy). What a finding *does*
is not the rule's business: the model's `RulePolicy` maps each (rule, path) to an
`Action` (refuse, quarantine, or accept with a warning); see docs/validation.md.

Rules, in the order a row's findings are listed:

- ``wrong_type``: a value that cannot be scored at all: text that is not a number
  (or ``inf``/``nan``) in a numeric feature, a non-text value in a categorical one,
  text that is not an ISO 8601 date in a datetime one (`dates.date_parse`),
  text the inference log cannot store (a NUL character).
- ``missing_value``: missing where training had no missing value.
- ``not_integer``: ``3.5`` in a feature that was whole numbers in training
  (``3.0`` is whole).
- ``out_of_range``: outside ``[min - t*range, max + t*range]`` (``t`` = the policy's
  ``range_tolerance``, default 0.1: training extremes are sample extremes).
- ``unknown_category``: a category never seen in training (the encoder treats it as unknown).
- ``duplicate_row``: the same values in every column as an earlier row of the same
  request, file or window (features by value, so ``7`` and ``7.0`` are the same).

"Missing" means one thing: JSON ``null``; in text (CSV cells, the drift reader's
stored values) an empty cell after trimming ASCII whitespace, or in CSV one of
`MISSING_TOKENS`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .dates import DATE_EXAMPLE, date_parse
from .profile import FeatureSpec, TrainingProfile, profile_read

# Case-sensitive CSV spellings of "missing". "nan" and "inf" are not among them:
# in a numeric feature they are wrong_type (a serialisation bug upstream).
MISSING_TOKENS = ("", "NA", "N/A", "null", "NULL", "None", "#N/A", "<NA>")
TEXT_MISSING = ("",)  # text that was JSON in the first place: only null and "" are missing
VALUE_CHARS = 40  # a value quoted in a finding
NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"  # finite decimal notation; not inf, nan, 1,5 or 0x1f
ASCII_SPACE = " \t\n\r\x0b\x0c"


class Action(StrEnum):
    REFUSE = "refuse"  # the request (API, form) is rejected, naming field and problem
    QUARANTINE = "quarantine"  # the row is set aside with its reason (batch: not scored; ingestion: bad/)
    WARN = "warn"  # accepted and scored, with a warning


class RulePath(StrEnum):
    API = "api"
    FORM = "form"
    BATCH = "batch"
    INGESTION = "ingestion"
    DRIFT = "drift"  # the drift reader: a quarantined row is left out of the window


REFUSING_PATHS = frozenset({RulePath.API, RulePath.FORM})  # a stop there refuses; elsewhere it quarantines


def stop_action(path: RulePath) -> Action:
    return Action.REFUSE if path in REFUSING_PATHS else Action.QUARANTINE


@dataclass(frozen=True)
class Finding:
    """One rule broken by one value of one row."""

    rule: str
    field: str | None  # None: the row as a whole (duplicate_row)
    problem: str  # what is wrong, for people: "not a number 'abc'"
    value: str = ""  # the value as received, shortened (for the compact reason)

    def text(self) -> str:
        return f"{self.field}: {self.problem}" if self.field else self.problem

    def code(self) -> str:
        """The compact reason of ingestion's bad rows: ``out_of_range:age=212``."""
        if self.field is None:
            return self.rule
        if self.rule == MissingRule.name:
            return f"{self.rule}:{self.field}"
        return f"{self.rule}:{self.field}={self.value[:VALUE_CHARS]}"


def _shown(value) -> str:
    return value[:VALUE_CHARS] if isinstance(value, str) else str(value)[:VALUE_CHARS]


# --------------------------------------------------------------------------- columns of a chunk


@dataclass
class Column:
    """One feature of a chunk, parsed once for every rule."""

    text: pa.Array  # trimmed text, "" where missing
    missing: np.ndarray  # bool
    numbers: np.ndarray | None = None  # numeric features: float64, 0 where missing or not a number
    finite: np.ndarray | None = None  # numeric features: the text is a finite number

    def values(self, positions: np.ndarray) -> list[str]:
        return self.text.take(pa.array(positions)).to_pylist()


def _numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return values.to_numpy(zero_copy_only=False)


def _parse_numbers(text: pa.Array, missing: pa.Array | None) -> tuple[np.ndarray, np.ndarray]:
    """(float values, True where the text is a finite number); missing rows read as 0, not flagged here."""
    filled = pc.if_else(missing, "0", text) if missing is not None else text
    try:  # fast path, a clean column: Arrow's parser takes everything NUMBER does (and inf/nan, caught below)
        numbers = _numpy(pc.cast(filled, pa.float64()))
        return numbers, np.isfinite(numbers)
    except pa.ArrowInvalid:
        number_like = pc.match_substring_regex(text, NUMBER)
        numbers = _numpy(pc.cast(pc.if_else(number_like, text, "0"), pa.float64()))
        return numbers, _numpy(number_like) & np.isfinite(numbers)


def column_parse(spec: FeatureSpec, values: pa.Array, *, missing_tokens=MISSING_TOKENS) -> Column:
    """Trim, find the missing cells and (numeric features) parse the numbers, once per chunk."""
    if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
        values = pc.cast(values, pa.string())
    if values.null_count:
        values = pc.fill_null(values, "")
    text = pc.ascii_trim_whitespace(values)
    missing_arrow = pc.is_in(text, value_set=pa.array(missing_tokens, type=pa.string()))
    missing = _numpy(missing_arrow)
    any_missing = bool(missing.any())
    clean = pc.if_else(missing_arrow, "", text) if any_missing else text
    if not spec.is_numeric:
        return Column(text=clean, missing=missing)
    numbers, finite = _parse_numbers(text, missing_arrow if any_missing else None)
    return Column(text=clean, missing=missing, numbers=numbers, finite=finite)


# --------------------------------------------------------------------------- the rules


class Rule:
    """One check. ``one`` sees a typed value (a float, a str; never missing, never of
    the wrong type: those are found first); ``many`` sees a parsed column and returns
    the rows that break the rule. Both name the problem the same way (``problem``)."""

    name: str = ""
    can_warn = True  # False: a finding cannot be scored, so no policy may accept it

    def applies(self, spec: FeatureSpec, table: RuleTable) -> bool:
        return True

    def one(self, spec: FeatureSpec, value, table: RuleTable) -> str | None:
        return None

    def many(self, spec: FeatureSpec, column: Column, table: RuleTable) -> np.ndarray:
        raise NotImplementedError

    def problem(self, spec: FeatureSpec, value: str, table: RuleTable) -> str:
        raise NotImplementedError


class WrongTypeRule(Rule):
    name = "wrong_type"
    can_warn = False

    def typed(self, spec: FeatureSpec, value) -> tuple[object, str | None]:
        """A JSON value (not None) as the model takes it, or the problem."""
        if spec.is_numeric:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return None, f"wrong type: expected a number, got {type(value).__name__} {_shown(repr(value))}"
            try:
                number = float(value)
            except OverflowError:  # a JSON integer beyond float range
                return None, f"non-finite number: {str(value)[:20]}… is out of range"
            if not math.isfinite(number):
                return None, f"non-finite number {value!r}"
            return number, None
        if spec.is_datetime:
            if not isinstance(value, str) or date_parse(value) is None:
                return None, self.problem(spec, _shown(value if isinstance(value, str) else repr(value)), None)
            return value, None
        if isinstance(value, (bool, int)):
            return str(value), None
        if isinstance(value, str):
            return value, _text_problem(value)
        return None, f"wrong type: expected a category (text), got {type(value).__name__}"

    def many(self, spec, column, table):
        if spec.is_numeric:
            return ~column.missing & ~column.finite
        if spec.is_datetime:
            return ~column.missing & ~_dates_readable(column.text)
        return ~column.missing & _numpy(pc.match_substring(column.text, "\x00"))

    def problem(self, spec, value, table):
        if spec.is_datetime:
            return f"not a date {_shown(value)!r}: expected {DATE_EXAMPLE}"
        if not spec.is_numeric:
            return NUL_PROBLEM
        try:
            float(value)
        except ValueError:
            return f"not a number {_shown(value)!r}"
        return f"non-finite number {_shown(value)!r}"


NUL_PROBLEM = "text contains a NUL character (\\u0000)"


def _dates_readable(text: pa.Array) -> np.ndarray:
    """True where the text reads as a date (each distinct text parsed once)."""
    encoded = pc.dictionary_encode(text)
    readable = np.asarray([date_parse(value) is not None for value in encoded.dictionary.to_pylist()], dtype=bool)
    return readable[_numpy(encoded.indices)] if len(readable) else np.zeros(len(text), dtype=bool)


def _text_problem(value: str) -> str | None:
    """Text the inference log cannot store (PostgreSQL's jsonb refuses both)."""
    if "\x00" in value:
        return NUL_PROBLEM
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "text is not valid Unicode (a lone surrogate such as \\ud800)"
    return None


class MissingRule(Rule):
    name = "missing_value"
    PROBLEM = "missing value: this feature was never missing in training"

    def applies(self, spec, table):
        return not spec.missing_in_training

    def many(self, spec, column, table):
        return column.missing

    def problem(self, spec, value, table):
        return self.PROBLEM


class IntegerRule(Rule):
    name = "not_integer"

    def applies(self, spec, table):
        return spec.is_integer

    def one(self, spec, value, table):
        return None if float(value).is_integer() else self.problem(spec, repr(value), table)

    def many(self, spec, column, table):
        whole = np.mod(np.where(column.finite, column.numbers, 0.0), 1) == 0
        return ~column.missing & column.finite & ~whole

    def problem(self, spec, value, table):
        return f"expected a whole number (whole in training), got {_shown(value)}"


class RangeRule(Rule):
    name = "out_of_range"

    def applies(self, spec, table):
        return spec.is_numeric and spec.minimum is not None and spec.maximum is not None

    def bounds(self, spec: FeatureSpec, table: RuleTable) -> tuple[float, float]:
        slack = table.policy.range_tolerance * (spec.maximum - spec.minimum)
        return spec.minimum - slack, spec.maximum + slack

    def one(self, spec, value, table):
        low, high = table.bounds[spec.name]
        return None if low <= value <= high else self.problem(spec, f"{value:g}", table)

    def many(self, spec, column, table):
        low, high = self.bounds(spec, table)
        return ~column.missing & column.finite & ((column.numbers < low) | (column.numbers > high))

    def problem(self, spec, value, table):
        low, high = self.bounds(spec, table)
        return (
            f"{_shown(value)} is outside the training range {spec.minimum:g}..{spec.maximum:g}"
            f" (with ±{table.policy.range_tolerance:g} of the range: {low:g}..{high:g})"
        )


class CategoryRule(Rule):
    name = "unknown_category"

    def applies(self, spec, table):
        return spec.is_categorical

    def one(self, spec, value, table):
        return None if value in table.known[spec.name] else self.problem(spec, value, table)

    def many(self, spec, column, table):
        return ~column.missing & ~_numpy(pc.is_in(column.text, value_set=table.known_arrays[spec.name]))

    def problem(self, spec, value, table):
        return f"category {_shown(value)!r} was not seen in training; treated as unknown"


DUPLICATE_PROBLEM = "same values in every column as an earlier row"


class DuplicateRule(Rule):
    """Row-level: see `Duplicates` (state across the chunks of one file)."""

    name = "duplicate_row"

    def applies(self, spec, table):
        return False  # not a per-feature rule


TYPE = WrongTypeRule()
RANGE = RangeRule()
FEATURE_RULES: tuple[Rule, ...] = (TYPE, MissingRule(), IntegerRule(), RANGE, CategoryRule())
DUPLICATES = DuplicateRule()
RULES: tuple[Rule, ...] = (*FEATURE_RULES, DUPLICATES)
RULE_NAMES = tuple(rule.name for rule in RULES)
_BY_NAME = {rule.name: rule for rule in RULES}


# --------------------------------------------------------------------------- the policy


def _default_action(rule: Rule, path: RulePath) -> Action:
    if rule.name in (RangeRule.name, CategoryRule.name):
        return Action.WARN  # usually real data: scored, and seen by drift
    if rule.name == DuplicateRule.name:
        # A file that repeats a record would be scored and counted twice; a caller who sends
        # the same row twice gets an answer per row, and the log holds many equal rows.
        return Action.QUARANTINE if path == RulePath.INGESTION else Action.WARN
    return stop_action(path)  # cannot be scored (type), or was never seen in training (missing, 3.5)


DEFAULT_RANGE_TOLERANCE = 0.1


class PolicyError(ValueError):
    """A per-model policy that cannot be applied; the message names the entry."""


@dataclass(frozen=True)
class RulePolicy:
    """What each rule's finding does on each path: defaults in code, per-model overrides
    stored in `models_registry.models.RulePolicyOverride` (editable in the admin).

    Overrides (JSON)::

        {"rules": {"out_of_range": "quarantine",                  # every path (refuse on api/form)
                   "unknown_category": {"ingestion": "quarantine"}},  # one path
         "range_tolerance": 0.2}
    """

    actions: tuple[tuple[str, str, Action], ...]
    range_tolerance: float = DEFAULT_RANGE_TOLERANCE

    @classmethod
    def default(cls) -> RulePolicy:
        return cls.from_overrides({})

    @classmethod
    def from_overrides(cls, overrides: Mapping | None, *, range_tolerance: float | None = None) -> RulePolicy:
        overrides = overrides or {}
        if not isinstance(overrides, Mapping):
            raise PolicyError("a rule policy is an object with 'rules' and/or 'range_tolerance'")
        unknown_keys = set(overrides) - {"rules", "range_tolerance"}
        if unknown_keys:
            raise PolicyError(f"unknown key(s) in the rule policy: {', '.join(sorted(unknown_keys))}")
        actions = {(rule.name, path): _default_action(rule, path) for rule in RULES for path in RulePath}
        rules = overrides.get("rules") or {}
        if not isinstance(rules, Mapping):
            raise PolicyError("'rules' must be an object: rule name -> action, or path -> action")
        for name, setting in rules.items():
            rule = _BY_NAME.get(name)
            if rule is None:
                raise PolicyError(f"unknown rule {name!r}: the rules are {', '.join(RULE_NAMES)}")
            if isinstance(setting, str):
                action = _action(name, "every path", setting)
                for path in RulePath:
                    actions[(name, path)] = stop_action(path) if action != Action.WARN else action
            elif isinstance(setting, Mapping):
                for path_name, value in setting.items():
                    if path_name not in set(RulePath):
                        raise PolicyError(f"{name}: unknown path {path_name!r}: the paths are {', '.join(RulePath)}")
                    path = RulePath(path_name)
                    action = _action(name, path_name, value)
                    if action != Action.WARN and action != stop_action(path):
                        raise PolicyError(
                            f"{name}.{path_name}: {path_name} cannot {action} a row; choose {stop_action(path)} or warn"
                        )
                    actions[(name, path)] = action
            else:
                raise PolicyError(f"{name}: expected an action or an object of path -> action, got {setting!r}")
            if not rule.can_warn and any(actions[(name, path)] == Action.WARN for path in RulePath):
                raise PolicyError(f"{name}: such a value cannot be scored, so it cannot be accepted with a warning")
        tolerance = overrides.get("range_tolerance", range_tolerance)
        tolerance = DEFAULT_RANGE_TOLERANCE if tolerance is None else tolerance
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance < 1e6:
            raise PolicyError(f"range_tolerance must be a number >= 0, got {tolerance!r}")
        return cls(
            actions=tuple((rule, path, action) for (rule, path), action in actions.items()),
            range_tolerance=float(tolerance),
        )

    def action(self, rule: str, path: RulePath) -> Action:
        return self._table[(rule, path)]

    @property
    def _table(self) -> dict[tuple[str, str], Action]:
        table = self.__dict__.get("_by_key")
        if table is None:
            table = {(rule, path): action for rule, path, action in self.actions}
            object.__setattr__(self, "_by_key", table)
        return table

    def as_table(self) -> dict[str, dict[str, str]]:
        """rule -> path -> action, for pages and docs."""
        return {rule.name: {path.value: str(self.action(rule.name, path)) for path in RulePath} for rule in RULES}


def _action(rule: str, where: str, value) -> Action:
    try:
        return Action(value)
    except ValueError:
        raise PolicyError(
            f"{rule} ({where}): unknown action {value!r}: choose {', '.join(a.value for a in Action)}"
        ) from None


# --------------------------------------------------------------------------- the table


@dataclass
class RecordsCheck:
    """JSON rows checked: typed rows, and the findings by what the policy makes of them."""

    rows: list[dict]
    refused: list[tuple[int, Finding]]
    warnings: list[tuple[int, Finding]]


@dataclass
class ChunkCheck:
    """A chunk checked column by column: findings as masks, texts made only for flagged rows."""

    n_rows: int
    columns: dict[str, Column]
    # (rule, field or None for the row, positions, the values as received, action): in rule order
    findings: list[tuple[str, str | None, np.ndarray, list[str], Action]] = field(default_factory=list)

    def rows(self, *, stop: bool) -> np.ndarray:
        mask = np.zeros(self.n_rows, dtype=bool)
        for _, _, positions, _, action in self.findings:
            if (action != Action.WARN) == stop:
                mask[positions] = True
        return mask

    @property
    def stopped(self) -> np.ndarray:
        """Rows the policy does not score (quarantined)."""
        return self.rows(stop=True)

    def reasons(self, *, stop: bool, table: RuleTable, style: str = "text") -> np.ndarray:
        """Per row, every finding of that kind in rule order ("" when none): ``"age: not a number 'x'; ..."``
        (style "text") or ``"wrong_type:age=x; ..."`` (style "code")."""
        reasons = np.full(self.n_rows, "", dtype=object)
        for rule, name, positions, values, action in self.findings:
            if (action != Action.WARN) != stop:
                continue
            findings = [table.finding(rule, name, value) for value in values]
            labels = np.asarray([f.code() if style == "code" else f.text() for f in findings], dtype=object)
            current = reasons[positions]
            reasons[positions] = np.where(current == "", labels, current + "; " + labels)
        return reasons

    def model_input(self, table: RuleTable, index=None) -> pd.DataFrame:
        """Every row typed for the model: numbers as float64 (NaN where missing), categories as text or None."""
        typed = {}
        for spec in table.profile.features:
            column = self.columns[spec.name]
            if spec.is_numeric:
                typed[spec.name] = np.where(column.missing | ~column.finite, np.nan, column.numbers)
            else:
                typed[spec.name] = pd.Series(
                    np.where(column.missing, None, _numpy(column.text).astype(object)), index=index, dtype=object
                )
        return pd.DataFrame(typed, index=index)


class RuleTable:
    """The rules of one model version under one policy (build once, use for every row)."""

    def __init__(self, profile: TrainingProfile | Mapping, *, policy: RulePolicy | None = None):
        self.profile = profile_read(profile)
        self.policy = policy or RulePolicy.default()
        self.known = {spec.name: frozenset(spec.categories) for spec in self.profile.features if spec.is_categorical}
        self.known_arrays = {name: pa.array(sorted(values), type=pa.string()) for name, values in self.known.items()}
        # Per feature, the rules after the type check that apply to it.
        value_rules = [rule for rule in FEATURE_RULES[1:] if type(rule).one is not Rule.one]
        self.checks = tuple(
            (spec, tuple(rule for rule in value_rules if rule.applies(spec, self))) for spec in self.profile.features
        )
        self.bounds = {
            spec.name: RANGE.bounds(spec, self) for spec in self.profile.features if RANGE.applies(spec, self)
        }
        self.column_rules = tuple(
            (spec, tuple(rule for rule in FEATURE_RULES if rule.applies(spec, self))) for spec in self.profile.features
        )
        self.missing_allowed = {
            spec.name: not MissingRule().applies(spec, self) for spec in self.profile.features
        }  # where training had missing values there is no finding at all
        self._actions: dict[RulePath, dict[str, Action]] = {
            path: {name: self.policy.action(name, path) for name in RULE_NAMES} for path in RulePath
        }

    def action(self, rule: str, path: RulePath) -> Action:
        return self._actions[path][rule]

    def finding(self, rule: str, name: str | None, value: str) -> Finding:
        if name is None:
            return Finding(rule=rule, field=None, problem=value)
        spec = self.profile.specs[name]
        return Finding(rule=rule, field=name, problem=_BY_NAME[rule].problem(spec, value, self), value=value)

    def missing_refused(self, name: str, path: RulePath) -> bool:
        """True when a missing value of this feature stops the row on this path (the form's required fields)."""
        return not self.missing_allowed[name] and self.action(MissingRule.name, path) != Action.WARN

    # ----------------------------------------------------------------- one row at a time (JSON)

    def record_check(self, record: Mapping) -> tuple[dict, list[Finding]]:
        """One JSON row (every feature present): the row typed for the model, and every finding."""
        row: dict = {}
        findings: list[Finding] = []
        for spec, rules in self.checks:
            value = record[spec.name]
            if isinstance(value, str):
                value = value.strip(ASCII_SPACE)
                if value == "":
                    value = None
            if value is None:
                row[spec.name] = None
                if not self.missing_allowed[spec.name]:
                    findings.append(Finding(MissingRule.name, spec.name, MissingRule.PROBLEM))
                continue
            typed, problem = TYPE.typed(spec, value)
            row[spec.name] = typed
            if problem:
                findings.append(Finding(TYPE.name, spec.name, problem, _shown(value)))
                continue
            for rule in rules:
                problem = rule.one(spec, typed, self)
                if problem:
                    findings.append(Finding(rule.name, spec.name, problem, _shown(value)))
        return row, findings

    def records_check(self, records: list[Mapping], *, path: RulePath) -> RecordsCheck:
        rows, refused, warnings = [], [], []
        for index, record in enumerate(records):
            row, findings = self.record_check(record)
            rows.append(row)
            for finding in findings:
                target = warnings if self._actions[path][finding.rule] == Action.WARN else refused
                target.append((index, finding))
        if len(rows) > 1:
            seen: dict[tuple, int] = {}
            for index, row in enumerate(rows):
                key = tuple(row.values())
                try:
                    first = seen.setdefault(key, index)
                except TypeError:  # an unhashable value (already a wrong_type finding)
                    continue
                if first != index:
                    finding = Finding(DUPLICATES.name, None, f"{DUPLICATE_PROBLEM} (row {first})")
                    target = warnings if self._actions[path][DUPLICATES.name] == Action.WARN else refused
                    target.append((index, finding))
        return RecordsCheck(rows=rows, refused=refused, warnings=warnings)

    # ----------------------------------------------------------------- a chunk at a time (text columns)

    def chunk_check(
        self,
        columns: Mapping[str, pa.Array],
        *,
        path: RulePath,
        duplicates: Duplicates | None = None,
        missing_tokens: Iterable[str] = MISSING_TOKENS,
    ) -> ChunkCheck:
        """Text columns (every feature; other columns only count for duplicates): findings per rule as masks.

        ``duplicates`` carries the rows seen so far across the chunks of one file (None: not checked).
        """
        tokens = tuple(missing_tokens)
        n_rows = len(next(iter(columns.values()))) if columns else 0
        check = ChunkCheck(n_rows=n_rows, columns={})
        actions = self._actions[path]
        for spec, rules in self.column_rules:
            column = column_parse(spec, columns[spec.name], missing_tokens=tokens)
            check.columns[spec.name] = column
            broken = np.zeros(n_rows, dtype=bool)  # the type check comes first: no other finding on such a value
            for rule in rules:
                mask = rule.many(spec, column, self)
                if rule is TYPE:
                    broken = mask
                elif broken.any():
                    mask = mask & ~broken
                if mask.any():
                    positions = np.flatnonzero(mask)
                    values = column.values(positions)
                    check.findings.append((rule.name, spec.name, positions, values, actions[rule.name]))
        if duplicates is not None:
            positions = duplicates.add(columns, check)
            if len(positions):
                values = [DUPLICATE_PROBLEM] * len(positions)
                check.findings.append((DUPLICATES.name, None, positions, values, actions[DUPLICATES.name]))
        return check


# --------------------------------------------------------------------------- duplicates


GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX_1, MIX_2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit (wrapping uint64 arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * MIX_1
    x = (x ^ (x >> np.uint64(27))) * MIX_2
    return x ^ (x >> np.uint64(31))


def _text_keys(values: pa.Array) -> np.ndarray:
    """A 64-bit key per string: Python's str hash of each distinct value, gathered by dictionary index."""
    if values.null_count:
        values = pc.fill_null(values, "")
    encoded = pc.dictionary_encode(values)
    distinct = [hash("\x1f" + value) for value in encoded.dictionary.to_pylist()]  # "" must not hash to 0
    table = np.asarray(distinct, dtype=np.int64).view(np.uint64)
    return table[_numpy(encoded.indices)] if len(table) else np.zeros(len(values), dtype=np.uint64)


class Duplicates:
    """Rows seen so far (one file, job or window): a 64-bit hash each, in one sorted array.

    Each row's hash combines every column (numbers by their float bits, so ``7`` and
    ``7.0`` are the same; text by Python's str hash of each distinct value), 8 bytes
    a row where a Python set would take ~70; a false duplicate needs a 64-bit
    collision (~1e-6 at 10M rows). ``pd.util.hash_pandas_object`` took 0.3 s per
    100,000 rows on 9 text columns, more than all the other rules together.
    """

    def __init__(self):
        self.seen = np.empty(0, dtype=np.uint64)

    def add(self, columns: Mapping[str, pa.Array], check: ChunkCheck) -> np.ndarray:
        """Positions in this chunk that repeat an earlier row (of this chunk or an earlier one)."""
        n_rows = check.n_rows
        hashes = np.zeros(n_rows, dtype=np.uint64)
        for name, values in columns.items():
            column = check.columns.get(name)
            if column is not None and column.numbers is not None:
                key = (column.numbers + 0.0).view(np.uint64).copy()  # by value; -0.0 is 0.0
                textual = ~column.finite | column.missing
                if textual.any():
                    key[textual] = _text_keys(column.text.filter(pa.array(textual)))
            elif column is not None:
                key = _text_keys(column.text)
            else:
                key = _text_keys(values)
            hashes = _mix(_mix(key) ^ (hashes * GOLDEN))  # order matters: (a, b) is not (b, a)
        order = np.argsort(hashes, kind="stable")  # equal hashes keep order: the first one is the original
        ordered = hashes[order]
        repeated = np.empty(len(ordered), dtype=bool)
        repeated[:1] = False
        repeated[1:] = ordered[1:] == ordered[:-1]
        if len(self.seen):  # sorted queries: numpy's binary search starts from the previous answer
            where = np.minimum(np.searchsorted(self.seen, ordered), len(self.seen) - 1)
            repeated |= self.seen[where] == ordered
        duplicate = np.empty(n_rows, dtype=bool)
        duplicate[order] = repeated
        # Both runs are sorted and distinct: the stable sort (timsort) merges them in linear time.
        self.seen = np.sort(np.concatenate([self.seen, ordered[~repeated]]), kind="stable")
        return np.flatnonzero(duplicate)

"""Validate a raw CSV against the model's training profile and split it in two.

Pure pyarrow/numpy (no Django, no database). `file_validate_and_split` reads
the file with the one CSV reader (`models_registry.csv_reader`) in batches of at most
``ValidationConfig.chunk_rows`` rows, every column as text (memory stays bounded
on a 1 GB file), checks every rule as a vectorised mask over the batch
(pyarrow.compute + numpy), and appends valid rows to the good file and invalid
rows to the bad file, each bad row carrying every rule it broke in one
``reason``: ``wrong_type:age=abc; missing_value:plan``. Only the
failing values are turned into Python strings. (A first version on pandas'
``read_csv(chunksize=)`` + ``to_numeric`` + ``to_csv`` took 3.8 s for 100,000
rows on the dev box; this one 0.5 s, ``bench/ingestion.py``.)

Row rules: the model's rule table (`models_registry.rules`: wrong_type,
missing_value, not_integer, out_of_range, unknown_category, duplicate_row), the
same table the API, the form, batch upload and the drift reader apply, under the
model's policy for the ``ingestion`` path (`models_registry.policies`). By
default a row is quarantined only when it cannot be scored or holds what
training never saw a feature take (wrong type, non-finite, missing where
training had no missing value, 3.5 in a whole-number feature) or repeats an
earlier row of the file; a value past the training range and an unseen category
are kept in the good file and counted as ``warning`` issues, so they reach
scoring and drift. Each rule with findings is one issue (``error`` when its rows
were quarantined, ``warning`` when kept). File-level issues on top:

- ``missing_value`` (warning): missing values where training had some: rows kept.
- ``missing_share_high`` (warning, per column): missing share above
  ``missing_share_threshold`` (default 0.2) and above the training share.
- ``extra_column`` (warning, per column): not a feature of the model; left out
  of the good file, kept in the bad file.

Whole-file failures quarantine the file whole with a ``whole_file_reason`` and
write nothing: not UTF-8 (latin-1 bytes, UTF-16, invalid bytes; a UTF-8 BOM is
fine), binary / not CSV, a record with more or fewer fields than the header,
no data rows, missing feature columns (named). The
caller keeps the original, byte for byte, as the quarantined copy (see
`monitoring.services.ingestion`), so no second copy is written to ``bad_path``;
``rows_in`` is the number of data rows when they can be counted (else 0) and
``rows_bad == rows_in``.

Outputs (CSV, UTF-8, text values quoted): good = ``row_number`` (1-based data
record in the raw file; a quoted newline does not start a record; blank lines
are not records) + feature columns, stripped, missing as empty;
bad = ``row_number`` + original columns as received + ``reason``. Both are
written as ``<name>.part`` beside the target and renamed when the whole file is
done; on any exception the ``.part`` files (and a good file already renamed)
are removed. A side with no rows is not written (its path is None). Every row
ends in exactly one place: ``rows_in == rows_good + rows_bad`` is checked
before returning.

Why hand-written masks rather than pandera or Great Expectations: the rules
come from each model's profile at run time, a bad row must carry every failed
rule in one reason string, and we split and write in the same pass. The
libraries only validate (at 1,000,000 rows GE 1.24 took 1.3 s and pandera 0.35
lazy validation 1.9 s, shared/NOTES.md) and then we would still map their
failure lists back to rows and write the files. Target: validate *and* split
1,000,000 rows in no more than GE's validation alone (``bench/ingestion.py``).

Completeness convention for files arriving in ``raw/`` (`file_is_complete`): a
name ending in ``.part`` or starting with ``.`` is never picked up (writers
write under such a name and rename when done); any other file is picked up once
its modification time is at least ``min_age_seconds`` old (its writer stopped).
"""

from __future__ import annotations

import csv
import os
import stat
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from models_registry.csv_limits import CsvLimitError, CsvLimits, csv_limits_check
from models_registry.csv_reader import CsvReadError, csv_batches, csv_header, header_missing_message
from models_registry.profile import TrainingProfile
from models_registry.rules import Action, Duplicates, RulePath, RulePolicy, RuleTable

ERROR = "error"
WARNING = "warning"
SAMPLES = 5
SAMPLE_CHARS = 80
RESERVED = ("row_number", "reason")
# More extra columns than this are one issue naming the first few, not one issue each.
EXTRA_COLUMNS_LISTED = 10


@dataclass(frozen=True)
class ValidationConfig:
    # A value up to 10% of the training range beyond its min/max is still in range
    # (training extremes are sample extremes, not hard limits; see the module docstring).
    range_tolerance: float = 0.1
    missing_share_threshold: float = 0.2
    chunk_rows: int = 100_000
    # Caps on the file's shape, checked before it is parsed (MLAPP_CSV_MAX_*).
    limits: CsvLimits = field(default_factory=CsvLimits)
    # Issue rows kept per file: the most severe and frequent; the rest counted in one `more_issues`.
    max_issues: int = 100

    def __post_init__(self):
        if self.range_tolerance < 0:
            raise ValueError("range_tolerance must be >= 0")
        if not 0 <= self.missing_share_threshold <= 1:
            raise ValueError("missing_share_threshold must be between 0 and 1")
        if self.chunk_rows < 1:
            raise ValueError("chunk_rows must be >= 1")
        if self.max_issues < 2:
            raise ValueError("max_issues must be >= 2")


@dataclass
class Issue:
    rule: str
    column: str
    severity: str
    count: int = 0
    sample_values: list[str] = field(default_factory=list)
    message: str = ""


@dataclass
class SplitResult:
    rows_in: int
    rows_good: int
    rows_bad: int
    issues: list[Issue]
    whole_file_reason: str | None = None
    good_path: Path | None = None
    bad_path: Path | None = None

    def as_dict(self) -> dict:
        """JSON-serialisable (paths as strings)."""
        data = asdict(self)
        data["good_path"] = str(self.good_path) if self.good_path else None
        data["bad_path"] = str(self.bad_path) if self.bad_path else None
        return data


class WholeFileError(ValueError):
    """The file cannot be read as rows at all; the message says why."""

    def __init__(self, message: str, *, countable: bool = True):
        super().__init__(message)
        self.countable = countable


def entry_is_settled(path: Path, *, min_age_seconds: float = 5, now: float | None = None) -> bool:
    """True when the entry ``path`` (whatever it is; a link is not followed) is not ``*.part``, not a
    dot-entry, and unchanged for ``min_age_seconds``."""
    if path.name.endswith(".part") or path.name.startswith("."):
        return False
    try:
        status = path.lstat()
    except FileNotFoundError:
        return False
    now = time.time() if now is None else now
    return now - status.st_mtime >= min_age_seconds


def file_is_complete(path: Path, *, min_age_seconds: float = 5, now: float | None = None) -> bool:
    """True when ``path`` is a finished regular file (not a link to one): not ``*.part``, not a
    dot-file, unchanged for ``min_age_seconds``."""
    return entry_is_settled(path, min_age_seconds=min_age_seconds, now=now) and entry_kind(path) is None


ENTRY_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISCHR, "a character device"),
)


def entry_kind(path: Path) -> str | None:
    """None for a regular file; else what the entry is ("a symbolic link", "a directory", ...), from
    `lstat`: a link is named as a link, never followed."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in ENTRY_KINDS if test(mode)), "not a regular file")


def count_data_rows(path: Path) -> int:
    """Data records after the header, as well as they can be counted (blank lines skipped, as pandas does)."""
    with path.open("rb") as handle:
        utf16 = handle.read(2) in (b"\xff\xfe", b"\xfe\xff")
    try:
        with path.open(newline="", encoding="utf-16" if utf16 else "utf-8-sig", errors="replace") as handle:
            return max(sum(1 for record in csv.reader(handle) if record) - 1, 0)
    except (csv.Error, UnicodeError):
        return 0


def _header_check(path: Path, features: list[str]) -> list[str]:
    try:
        header = csv_header(path)
    except CsvReadError as exc:
        raise WholeFileError(str(exc), countable=exc.countable) from exc
    reserved = [name for name in RESERVED if name in header]
    if reserved:
        raise WholeFileError(f"reserved column name(s) in the header (added by validation): {', '.join(reserved)}")
    missing = header_missing_message(header, features)
    if missing:
        raise WholeFileError(missing)
    return header


class _Checker:
    """The per-file state of the row rules: the rule table, issues so far, rows seen, missing counts."""

    def __init__(self, table: RuleTable, missing_share_threshold: float):
        self.table = table
        self.missing_share_threshold = missing_share_threshold
        self.specs = table.profile.features
        self.issues: dict[tuple[str, str], Issue] = {}
        self.duplicates = Duplicates()
        self.missing_counts = {spec.name: 0 for spec in self.specs}

    def _record(self, rule: str, column: str, severity: str, count: int, samples: list, message: str) -> None:
        issue = self.issues.setdefault((rule, column), Issue(rule=rule, column=column, severity=severity))
        issue.count += count
        issue.message = message
        for value in samples:
            if len(issue.sample_values) >= SAMPLES:
                break
            value = str(value)[:SAMPLE_CHARS]
            if value not in issue.sample_values:
                issue.sample_values.append(value)

    def check(self, batch: pa.RecordBatch, row_numbers: np.ndarray) -> tuple[np.ndarray, dict[str, pa.Array]]:
        """(reason per row, "" when the row is good; the feature columns stripped, missing values as "")."""
        columns = {name: batch.column(name) for name in batch.schema.names}
        check = self.table.chunk_check(columns, path=RulePath.INGESTION, duplicates=self.duplicates)
        for rule, name, positions, values, action in check.findings:
            stop = action != Action.WARN
            if name is None:  # duplicate_row: the samples are row numbers
                samples = row_numbers[positions[: SAMPLES * 4]].tolist()
                message = f"{values[0]} of the file (samples are row numbers)"
            else:
                samples = values[: SAMPLES * 4]
                message = self.table.finding(rule, name, values[0]).problem
            message += "; rows quarantined" if stop else "; accepted with a warning: rows kept"
            self._record(rule, name or "", ERROR if stop else WARNING, len(positions), samples, message)
        for spec in self.specs:
            column = check.columns[spec.name]
            n_missing = int(column.missing.sum())
            self.missing_counts[spec.name] += n_missing
            if n_missing and self.table.missing_allowed[spec.name]:
                self._record(
                    "missing_value", spec.name, WARNING, n_missing, [], "missing values are allowed: rows kept"
                )
        reasons = check.reasons(stop=True, table=self.table, style="code")
        return reasons, {spec.name: check.columns[spec.name].text for spec in self.specs}

    def file_issues(self, *, rows_in: int, extra: list[str], max_issues: int) -> list[Issue]:
        issues = dict(self.issues)
        if len(extra) > EXTRA_COLUMNS_LISTED:
            issues[("extra_column", "")] = Issue(
                rule="extra_column",
                column="",
                severity=WARNING,
                count=rows_in,
                sample_values=[name[:SAMPLE_CHARS] for name in extra[:SAMPLES]],
                message=f"{len(extra):,} columns are not features of the model (the first {SAMPLES} in the "
                "samples): kept in bad rows, left out of good rows",
            )
        else:
            for name in extra:
                issues[("extra_column", name)] = Issue(
                    rule="extra_column",
                    column=name,
                    severity=WARNING,
                    count=rows_in,
                    message="not a feature of the model: kept in bad rows, left out of good rows",
                )
        threshold = self.missing_share_threshold
        for spec in self.specs:
            name, count = spec.name, self.missing_counts[spec.name]
            share = count / rows_in if rows_in else 0.0
            if share > threshold and share > spec.missing_share:
                issues[("missing_share_high", name)] = Issue(
                    rule="missing_share_high",
                    column=name,
                    severity=WARNING,
                    count=count,
                    message=f"{share:.0%} missing, above the threshold {threshold:.0%}"
                    f" (training {spec.missing_share:.0%})",
                )
        return issues_capped(list(issues.values()), max_issues=max_issues)


SEVERITY_ORDER = {ERROR: 0, WARNING: 1}


def issues_capped(issues: list[Issue], *, max_issues: int) -> list[Issue]:
    """At most ``max_issues`` issues: the most severe, then most frequent; the rest are counted in
    one ``more_issues`` issue (its count: how many issues it stands for; rules in the samples)."""
    if len(issues) <= max_issues:
        return issues
    ranked = sorted(issues, key=lambda issue: (SEVERITY_ORDER.get(issue.severity, 2), -issue.count))
    kept, rest = ranked[: max_issues - 1], ranked[max_issues - 1 :]
    rules = sorted({issue.rule for issue in rest})
    severity = ERROR if any(issue.severity == ERROR for issue in rest) else WARNING
    more = Issue(
        rule="more_issues",
        column="",
        severity=severity,
        count=len(rest),
        sample_values=rules[:SAMPLES],
        message=f"{len(rest):,} more issues ({sum(issue.count for issue in rest):,} findings) not stored one by "
        f"one: at most {max_issues} per file (MLAPP_INGEST_MAX_ISSUES_PER_FILE); their rules are in the samples; "
        "every bad row still carries its reason in the quarantine file",
    )
    return [*kept, more]


def _whole_file(path: Path, reason: str, *, countable: bool = True) -> SplitResult:
    rows = count_data_rows(path) if countable else 0
    return SplitResult(rows_in=rows, rows_good=0, rows_bad=rows, issues=[], whole_file_reason=reason)


def _batches(path: Path, header: list[str], chunk_rows: int):
    """The file's text batches (`models_registry.csv_reader`); a read error is a whole-file failure."""
    try:
        yield from csv_batches(path, header=header, chunk_rows=chunk_rows)
    except CsvReadError as exc:
        raise WholeFileError(str(exc), countable=exc.countable) from exc


def file_validate_and_split(
    *,
    raw_path: Path,
    profile: TrainingProfile | Mapping,
    good_path: Path,
    bad_path: Path,
    config: ValidationConfig | None = None,
    policy: RulePolicy | None = None,
) -> SplitResult:
    """Split ``raw_path`` into good rows (row_number + features) and bad rows (row_number + original + reason).

    Rows are checked by the model's rule table under ``policy`` (the model's, from
    `models_registry.policies.rule_policy_get`; default: the code's defaults with
    ``config.range_tolerance``), path ``ingestion``.
    """
    config = config or ValidationConfig()
    policy = policy or RulePolicy.from_overrides({}, range_tolerance=config.range_tolerance)
    table = RuleTable(profile, policy=policy)
    raw_path, good_path, bad_path = Path(raw_path), Path(good_path), Path(bad_path)
    features = table.profile.feature_names
    try:
        csv_limits_check(raw_path, limits=config.limits)
    except CsvLimitError as exc:  # before any parser allocates for it; its lines counted as its rows
        return SplitResult(rows_in=exc.lines, rows_good=0, rows_bad=exc.lines, issues=[], whole_file_reason=str(exc))
    try:
        header = _header_check(raw_path, features)
    except WholeFileError as exc:
        return _whole_file(raw_path, str(exc), countable=exc.countable)

    extra = [column for column in header if column not in features]
    checker = _Checker(table, config.missing_share_threshold)
    good_partial = good_path.with_name(good_path.name + ".part")
    bad_partial = bad_path.with_name(bad_path.name + ".part")
    parts = (good_partial, bad_partial)
    good_schema = pa.schema([("row_number", pa.int64()), *((name, pa.string()) for name in features)])
    bad_schema = pa.schema(
        [("row_number", pa.int64()), *((str(name), pa.string()) for name in header), ("reason", pa.string())]
    )
    rows_in = rows_good = rows_bad = 0
    renamed: list[Path] = []
    try:
        for partial in parts:
            partial.unlink(missing_ok=True)  # left by a crashed earlier attempt
        with (
            pacsv.CSVWriter(good_partial, good_schema) as good_out,
            pacsv.CSVWriter(bad_partial, bad_schema) as bad_out,
        ):
            for batch in _batches(raw_path, header, config.chunk_rows):
                row_numbers = np.arange(rows_in + 1, rows_in + batch.num_rows + 1, dtype=np.int64)
                rows_in += batch.num_rows
                reasons, clean = checker.check(batch, row_numbers)
                bad = reasons != ""
                n_bad = int(bad.sum())
                if n_bad < batch.num_rows:
                    keep = pa.array(~bad)
                    good_out.write_table(
                        pa.table(
                            {"row_number": row_numbers[~bad], **{n: clean[n].filter(keep) for n in features}},
                            schema=good_schema,
                        )
                    )
                    rows_good += batch.num_rows - n_bad
                if n_bad:
                    take = pa.array(np.flatnonzero(bad))
                    columns = {"row_number": row_numbers[bad]}
                    columns.update((str(name), batch.column(i).take(take)) for i, name in enumerate(header))
                    columns["reason"] = pa.array(reasons[bad].tolist(), type=pa.string())
                    bad_out.write_table(pa.table(columns, schema=bad_schema))
                    rows_bad += n_bad
        if rows_in == 0:
            _remove(*parts)
            return _whole_file(raw_path, "header only: no data rows", countable=False)
        issues = checker.file_issues(rows_in=rows_in, extra=extra, max_issues=config.max_issues)
        # The accounting invariant: never hand over a split that loses or doubles a row.
        assert rows_in == rows_good + rows_bad, f"{raw_path}: {rows_in} rows in, {rows_good} good + {rows_bad} bad"
        for partial, final, rows in ((good_partial, good_path, rows_good), (bad_partial, bad_path, rows_bad)):
            if rows:
                os.replace(partial, final)
                renamed.append(final)
            else:
                partial.unlink()
    except WholeFileError as exc:  # raised by the reader: the text, not our code
        _remove(*parts)
        return _whole_file(raw_path, str(exc), countable=exc.countable)
    except BaseException:
        _remove(*parts, *renamed)
        raise
    return SplitResult(
        rows_in=rows_in,
        rows_good=rows_good,
        rows_bad=rows_bad,
        issues=issues,
        good_path=good_path if rows_good else None,
        bad_path=bad_path if rows_bad else None,
    )


def _remove(*paths: Path) -> None:
    for path in paths:
        if path.is_file():
            path.unlink()

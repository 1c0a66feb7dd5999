"""Validate a raw CSV against the model's training profile and split it in two.

Pure pandas/pyarrow (no Django, no database). `file_validate_and_split` reads
the file with pyarrow's streaming CSV reader in batches of at most
``ValidationConfig.chunk_rows`` rows, every column as text (memory stays bounded
on a 1 GB file), checks every rule as a vectorised mask over the batch
(pyarrow.compute + numpy), and appends valid rows to the good file and invalid
rows to the bad file, each bad row carrying every rule it broke in one
``reason``: ``out_of_range:age=212; unknown_category:plan=gold``. Only the
failing values are turned into Python strings. (A first version on pandas'
``read_csv(chunksize=)`` + ``to_numeric`` + ``to_csv`` took 3.8 s for 100,000
rows on the dev box; this one 0.5 s, ``bench/ingestion.py``.)

Rules (name, severity; from the training profile, `models_registry.profile`):

- ``missing_value`` (error): empty or a missing token (``NA``, ``null``, ...) in a
  feature that had no missing values in training. Where training had some, the
  row is kept and the count is a warning issue.
- ``wrong_type`` (error): non-numeric text in a numeric feature, a non-integer
  in an integer feature (``3.0`` is an integer, ``3.5`` is not), ``inf``/``nan``.
- ``out_of_range`` (error): outside ``[min - t*range, max + t*range]`` with
  ``t = range_tolerance`` (default 0.1). The training min/max are sample
  extremes, not physical limits: a 10 % margin lets plausible new extremes
  through (on 4,000 training rows the next 4,000 exceed the max about half of the
  time) while a unit error (cents for euros, months for years) or a sentinel
  (``-1``, ``999``) is still far outside.
- ``unknown_category`` (error): a categorical value never seen in training.
- ``duplicate_row`` (error): the same values in every column as an earlier row
  of the same file, across chunks (features compared by value, so ``7`` and
  ``7.0`` are the same; other columns as text). Each row gets a 64-bit hash
  (numbers by their float bits, text by Python's str hash of each distinct
  value, columns combined with splitmix64) and the hashes are kept in one sorted
  numpy array: 8 bytes a row (~120 MB for a 1 GB file) where a Python set would
  take ~70; a false duplicate needs a 64-bit collision (~1e-6 at 10M rows).
  ``pd.util.hash_pandas_object`` does the same job but took 0.3 s per 100,000
  rows on these 9 text columns, more than all the other rules together.
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
import io
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from models_registry.profile import NUMERIC

ERROR = "error"
WARNING = "warning"
# Case-sensitive tokens read as "missing". "nan" and "inf" are not among them:
# in a numeric feature they are wrong_type (a serialisation bug upstream).
MISSING_TOKENS = ("", "NA", "N/A", "null", "NULL", "None", "#N/A", "<NA>")
SAMPLES = 5
SAMPLE_CHARS = 80
HEAD_BYTES = 65536


@dataclass(frozen=True)
class ValidationConfig:
    # A value up to 10% of the training range beyond its min/max is still in range
    # (training extremes are sample extremes, not hard limits; see the module docstring).
    range_tolerance: float = 0.1
    missing_share_threshold: float = 0.2
    chunk_rows: int = 100_000

    def __post_init__(self):
        if self.range_tolerance < 0:
            raise ValueError("range_tolerance must be >= 0")
        if not 0 <= self.missing_share_threshold <= 1:
            raise ValueError("missing_share_threshold must be between 0 and 1")
        if self.chunk_rows < 1:
            raise ValueError("chunk_rows must be >= 1")


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


def file_is_complete(path: Path, *, min_age_seconds: float = 5, now: float | None = None) -> bool:
    """True when ``path`` is a finished file: not ``*.part``, not a dot-file, unchanged for ``min_age_seconds``."""
    if path.name.endswith(".part") or path.name.startswith("."):
        return False
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    if not path.is_file():
        return False
    now = time.time() if now is None else now
    return now - stat.st_mtime >= min_age_seconds


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
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
    if not head.strip():
        raise WholeFileError("empty file: no header and no rows", countable=False)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise WholeFileError("UTF-16 encoded (byte-order mark): expected UTF-8 text")
    if b"\x00" in head:
        raise WholeFileError("binary content (NUL bytes): not a CSV file", countable=False)
    try:
        header = pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns.tolist()
    except UnicodeDecodeError as exc:
        raise WholeFileError(f"not UTF-8 text (invalid byte at position {exc.start} of the header)") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise WholeFileError(f"not a readable CSV: {exc}", countable=False) from exc
    raw_header = next(csv.reader(io.StringIO(head.decode("utf-8-sig", errors="replace"))), [])
    repeated = sorted({name for name in raw_header if raw_header.count(name) > 1})
    if repeated:
        raise WholeFileError(f"duplicate column name(s) in the header: {', '.join(repeated)}")
    reserved = [name for name in ("row_number", "reason") if name in header]
    if reserved:
        raise WholeFileError(f"reserved column name(s) in the header (added by validation): {', '.join(reserved)}")
    missing = [name for name in features if name not in header]
    if missing:
        hint = ""
        if len(header) == 1 and any(sep in str(header[0]) for sep in (";", "\t", "|")):
            hint = " (one column in the header: the separator must be a comma)"
        raise WholeFileError(f"missing required column(s): {', '.join(missing)}{hint}")
    return header


NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"  # finite decimal notation; not inf, nan, 1,5 or 0x1f
_MISSING = pa.array(MISSING_TOKENS, type=pa.string())


GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX_1, MIX_2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit (wrapping uint64 arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * MIX_1
    x = (x ^ (x >> np.uint64(27))) * MIX_2
    return x ^ (x >> np.uint64(31))


def _text_keys(values: pa.Array) -> np.ndarray:
    """A 64-bit key per string: Python's str hash of each distinct value, gathered by dictionary index."""
    encoded = pc.dictionary_encode(values)
    distinct = [hash("\x1f" + value) for value in encoded.dictionary.to_pylist()]  # "" must not hash to 0
    table = np.asarray(distinct, dtype=np.int64).view(np.uint64)
    return table[_numpy(encoded.indices)] if len(table) else np.zeros(len(values), dtype=np.uint64)


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


def _numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return values.to_numpy(zero_copy_only=False)


class _Checker:
    """The per-file state of the row rules: issues so far, row hashes seen, missing counts."""

    def __init__(self, profile: dict, config: ValidationConfig):
        self.specs = profile["features"]
        self.config = config
        self.issues: dict[tuple[str, str], Issue] = {}
        self.seen = np.empty(0, dtype=np.uint64)  # sorted hashes of the rows so far
        self.missing_counts = {spec["name"]: 0 for spec in self.specs}
        self.categories = {
            spec["name"]: pa.array(list(spec.get("categories", {})), type=pa.string())
            for spec in self.specs
            if spec["kind"] != NUMERIC
        }

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

    def _fail(self, failures: list, rule: str, name: str, mask: np.ndarray, text: pa.Array, message: str) -> None:
        """Note ``rule:name=value`` for the rows in ``mask``; only those rows' values are read."""
        if not mask.any():
            return
        positions = np.flatnonzero(mask)
        values = text.take(pa.array(positions)).to_pylist()
        if rule == "missing_value":
            labels = np.full(len(positions), f"{rule}:{name}", dtype=object)
        else:
            labels = np.asarray([f"{rule}:{name}={value[:40]}" for value in values], dtype=object)
        failures.append((positions, labels))
        self._record(rule, name, ERROR, len(positions), values[: SAMPLES * 4], message)

    def check(self, batch: pa.RecordBatch, row_numbers: np.ndarray) -> tuple[np.ndarray, dict[str, pa.Array]]:
        """(reason per row, "" when valid; the feature columns stripped, missing values as "")."""
        failures: list[tuple[np.ndarray, np.ndarray]] = []
        clean = {}
        keys: dict[str, np.ndarray] = {}  # a 64-bit key per row and feature, for duplicate_row
        for spec in self.specs:
            name = spec["name"]
            text = pc.ascii_trim_whitespace(batch.column(name))
            missing_arrow = pc.is_in(text, value_set=_MISSING)
            missing = _numpy(missing_arrow)
            n_missing = int(missing.sum())
            self.missing_counts[name] += n_missing
            if n_missing and not spec.get("missing_share"):
                self._fail(failures, "missing_value", name, missing, text, "no missing values in training")
            elif n_missing:
                samples = text.take(pa.array(np.flatnonzero(missing)[: SAMPLES * 4])).to_pylist()
                self._record(
                    "missing_value", name, WARNING, n_missing, samples, "missing values are allowed: rows kept"
                )
            if spec["kind"] == NUMERIC:
                numbers, valid = _parse_numbers(text, missing_arrow if n_missing else None)
                wrong = ~missing & ~valid
                key = (numbers + 0.0).view(np.uint64).copy()  # by value: "7" and "7.0 " are the same; -0.0 is 0.0
                textual = ~valid | missing
                if textual.any():
                    key[textual] = _text_keys(text.filter(pa.array(textual)))
                keys[name] = key
                if spec.get("dtype") == "integer":
                    wrong |= ~missing & ~wrong & (np.mod(np.where(wrong, 0, numbers), 1) != 0)
                self._fail(failures, "wrong_type", name, wrong, text, f"expected {spec.get('dtype') or 'a'} number")
                low, high = spec.get("min"), spec.get("max")
                if low is not None and high is not None:
                    slack = self.config.range_tolerance * (high - low)
                    outside = ~missing & ~wrong & ((numbers < low - slack) | (numbers > high + slack))
                    self._fail(
                        failures,
                        "out_of_range",
                        name,
                        outside,
                        text,
                        f"outside [{low - slack:g}, {high + slack:g}]: training {low:g}..{high:g}"
                        f" ± {self.config.range_tolerance:g} of the range",
                    )
            else:
                known = self.categories[name]
                unknown = ~missing & ~_numpy(pc.is_in(text, value_set=known))
                keys[name] = _text_keys(text)
                shown = ", ".join(known.to_pylist()[:20])
                self._fail(failures, "unknown_category", name, unknown, text, f"training categories: {shown}")
            clean[name] = pc.if_else(missing_arrow, "", text) if n_missing else text
        self._duplicates(batch, keys, row_numbers, failures)
        reasons = np.full(batch.num_rows, "", dtype=object)
        for positions, labels in failures:  # in rule order: one reason string per bad row
            current = reasons[positions]
            reasons[positions] = np.where(current == "", labels, current + "; " + labels)
        return reasons, clean

    def _duplicates(self, batch: pa.RecordBatch, keys: dict, row_numbers: np.ndarray, failures: list) -> None:
        """Same values in every column (features by value, other columns as text) as an earlier row of the file."""
        hashes = np.zeros(batch.num_rows, dtype=np.uint64)
        for name in batch.schema.names:
            key = keys[name] if name in keys else _text_keys(batch.column(name))
            hashes = _mix(_mix(key) ^ (hashes * GOLDEN))  # order matters: (a, b) is not (b, a)
        order = np.argsort(hashes, kind="stable")  # equal hashes keep file order: the first one is the original
        ordered = hashes[order]
        repeated = np.empty(len(ordered), dtype=bool)
        repeated[:1] = False
        repeated[1:] = ordered[1:] == ordered[:-1]
        if len(self.seen):  # sorted queries: numpy's binary search starts from the previous answer
            where = np.minimum(np.searchsorted(self.seen, ordered), len(self.seen) - 1)
            repeated |= self.seen[where] == ordered
        duplicate = np.empty(len(hashes), dtype=bool)
        duplicate[order] = repeated
        # Both runs are sorted and distinct: the stable sort (timsort) merges them in linear time.
        self.seen = np.sort(np.concatenate([self.seen, ordered[~repeated]]), kind="stable")
        if duplicate.any():
            positions = np.flatnonzero(duplicate)
            failures.append((positions, np.full(len(positions), "duplicate_row", dtype=object)))
            self._record(
                "duplicate_row",
                "",
                ERROR,
                len(positions),
                row_numbers[positions[: SAMPLES * 4]].tolist(),
                "same values in every column as an earlier row of the file (samples are row numbers)",
            )

    def file_issues(self, *, rows_in: int, extra: list[str]) -> list[Issue]:
        issues = dict(self.issues)
        for name in extra:
            issues[("extra_column", name)] = Issue(
                rule="extra_column",
                column=name,
                severity=WARNING,
                count=rows_in,
                message="not a feature of the model: kept in bad rows, left out of good rows",
            )
        threshold = self.config.missing_share_threshold
        for spec in self.specs:
            name, count = spec["name"], self.missing_counts[spec["name"]]
            share = count / rows_in if rows_in else 0.0
            if share > threshold and share > (spec.get("missing_share") or 0.0):
                issues[("missing_share_high", name)] = Issue(
                    rule="missing_share_high",
                    column=name,
                    severity=WARNING,
                    count=count,
                    message=f"{share:.0%} missing, above the threshold {threshold:.0%}"
                    f" (training {spec.get('missing_share') or 0:.0%})",
                )
        return list(issues.values())


def _whole_file(path: Path, reason: str, *, countable: bool = True) -> SplitResult:
    rows = count_data_rows(path) if countable else 0
    return SplitResult(rows_in=rows, rows_good=0, rows_bad=rows, issues=[], whole_file_reason=reason)


def _batches(path: Path, header: list[str], chunk_rows: int):
    """Record batches of at most ``chunk_rows`` rows, every column as text (pyarrow's streaming reader)."""
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
    bytes_per_row = len(head) / max(head.count(b"\n"), 1)
    block = int(min(max(chunk_rows * bytes_per_row * 1.2, 1 << 20), 64 << 20))
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=block),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise _read_error(exc, rows=0) from exc
    rows = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:
            raise _read_error(exc, rows=rows) from exc
        rows += batch.num_rows
        for start in range(0, batch.num_rows, chunk_rows):
            yield batch.slice(start, chunk_rows)


def _read_error(exc: pa.ArrowInvalid, *, rows: int) -> WholeFileError:
    message = (str(exc).splitlines() or [type(exc).__name__])[0]
    if "UTF8" in message or "UTF-8" in message:
        return WholeFileError(f"not UTF-8 text (invalid bytes after data row {rows})")
    return WholeFileError(f"not a valid CSV after data row {rows}: {message}")


def file_validate_and_split(
    *,
    raw_path: Path,
    profile: dict,
    good_path: Path,
    bad_path: Path,
    config: ValidationConfig | None = None,
) -> SplitResult:
    """Split ``raw_path`` into good rows (row_number + features) and bad rows (row_number + original + reason)."""
    config = config or ValidationConfig()
    raw_path, good_path, bad_path = Path(raw_path), Path(good_path), Path(bad_path)
    features = [spec["name"] for spec in profile["features"]]
    try:
        header = _header_check(raw_path, features)
    except WholeFileError as exc:
        return _whole_file(raw_path, str(exc), countable=exc.countable)

    extra = [column for column in header if column not in features]
    checker = _Checker(profile, config)
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
        issues = checker.file_issues(rows_in=rows_in, extra=extra)
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

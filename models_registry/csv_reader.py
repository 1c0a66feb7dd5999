"""One CSV reader for every path: training, batch upload, ingestion and the scheduled job.

Every path reads a CSV the same way: UTF-8 (a UTF-8 byte-order mark is dropped;
UTF-16 and invalid bytes are refused), the delimiter detected from the first lines
(`csv_delimiter`: comma, semicolon, tab or pipe, quoted fields respected; comma when
nothing else fits), a header row whose names are unique, every
cell read as text by pyarrow's streaming reader in batches of bounded size (a
quoted newline stays in its cell, blank lines are not records), then typed in
one place: a cell that is empty after trimming ASCII whitespace, or one of
`rules.MISSING_TOKENS`, is missing; numeric features are float64 (NaN where
missing), categorical ones text (None where missing). With a profile the types
are the profile's; without one (training) a column is numeric when every present
cell is a number.

Errors are `CsvReadError` with a message for people (callers prefix the file's name).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .profile import CATEGORICAL, NUMERIC, FeatureSpec, TrainingProfile, profile_read
from .rules import column_parse

HEAD_BYTES = 65536
CHUNK_ROWS = 100_000
DELIMITERS = (",", ";", "\t", "|")  # in order of preference when several fit
SNIFF_ROWS = 50

Source = str | Path | bytes | io.IOBase


class CsvReadError(ValueError):
    """The file cannot be read as CSV rows; the message says why.

    ``countable``: its lines can still be counted as rows (for the accounting of a quarantined file).
    """

    def __init__(self, message: str, *, countable: bool = True):
        super().__init__(message)
        self.countable = countable


def _readable(source: Source):
    """Something pyarrow reads (and re-reads): a path, or the bytes of a file object."""
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, bytes):
        return pa.BufferReader(source)
    data = source.read()
    return pa.BufferReader(data.encode() if isinstance(data, str) else data)


def _head(readable) -> bytes:
    if isinstance(readable, str):
        with open(readable, "rb") as handle:
            return handle.read(HEAD_BYTES)
    readable.seek(0)
    head = readable.read(HEAD_BYTES)
    readable.seek(0)
    return bytes(head)


def delimiter_name(delimiter: str) -> str:
    return {"\t": "tab", ",": "comma ','", ";": "semicolon ';'", "|": "pipe '|'"}.get(delimiter, repr(delimiter))


def _sniffed(head: bytes) -> str:
    """The delimiter that splits the first rows into the same number (> 1) of fields, the most fields
    winning (comma on a tie); comma when none does."""
    text = head.decode("utf-8-sig", errors="replace")
    if len(head) >= HEAD_BYTES and "\n" in text:
        text = text.rsplit("\n", 1)[0]  # the last line may be cut
    best, best_width = ",", 1
    for delimiter in DELIMITERS:
        try:
            rows = []
            for row in csv.reader(io.StringIO(text), delimiter=delimiter):
                if row:
                    rows.append(len(row))
                if len(rows) >= SNIFF_ROWS:
                    break
        except csv.Error:
            continue
        if rows and rows[0] > best_width and all(width == rows[0] for width in rows):
            best, best_width = delimiter, rows[0]
    return best


def csv_delimiter(source: Source, *, readable=None) -> str:
    """The delimiter every reader of this file uses (see the module's docstring)."""
    return _sniffed(_head(readable if readable is not None else _readable(source)))


def csv_header(source: Source, *, readable=None) -> list[str]:
    """The column names, or `CsvReadError`: empty, UTF-16, not UTF-8, unreadable, names repeated."""
    head = _head(readable if readable is not None else _readable(source))
    if not head.strip():
        raise CsvReadError("empty file: no header and no rows", countable=False)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CsvReadError("UTF-16 encoded (byte-order mark), not UTF-8 text")
    if b"\x00" in head:
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        except UnicodeDecodeError as exc:
            raise CsvReadError("binary content (NUL bytes), not UTF-8 text: not a CSV file", countable=False) from exc
    first_line = head.split(b"\n", 1)[0] if b"\n" in head or len(head) < HEAD_BYTES else head
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvReadError(f"not UTF-8 text (invalid byte at position {exc.start} of the header)") from exc
    try:
        header = next(csv.reader(io.StringIO(text), delimiter=_sniffed(head)), [])
    except csv.Error as exc:
        raise CsvReadError(f"not a readable CSV: {exc}", countable=False) from exc
    header = [name.strip() for name in header]
    if not header or not any(header):
        raise CsvReadError("no header row", countable=False)
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise CsvReadError(f"duplicate column name(s) in the header: {', '.join(repeated)}")
    return header


def header_missing_message(header: list[str], required: list[str]) -> str | None:
    """ "missing required column(s): ..." naming them (and a wrong separator), or None."""
    missing = [name for name in required if name not in header]
    if not missing:
        return None
    hint = ""
    if len(header) == 1:
        hint = f" (one column in the header: no delimiter among {', '.join(map(delimiter_name, DELIMITERS))} fits)"
    return f"missing required column(s): {', '.join(missing)}{hint}"


def csv_batches(
    source: Source, *, header: list[str] | None = None, chunk_rows: int = CHUNK_ROWS, readable=None
) -> Iterator[pa.RecordBatch]:
    """Record batches of at most ``chunk_rows`` rows, every column as text ("" for an empty cell)."""
    readable = readable if readable is not None else _readable(source)
    header = header if header is not None else csv_header(source, readable=readable)
    head = _head(readable)
    delimiter = _sniffed(head)
    bytes_per_row = len(head) / max(head.count(b"\n"), 1)
    block = int(min(max(chunk_rows * bytes_per_row * 1.2, 1 << 20), 64 << 20))
    try:
        reader = pacsv.open_csv(
            readable,
            read_options=pacsv.ReadOptions(block_size=block, column_names=header, skip_rows=1),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise _read_error(exc, rows=0, delimiter=delimiter) from exc
    rows = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:
            raise _read_error(exc, rows=rows, delimiter=delimiter) from exc
        rows += batch.num_rows
        for start in range(0, batch.num_rows, chunk_rows):
            yield batch.slice(start, chunk_rows)


def _read_error(exc: pa.ArrowInvalid, *, rows: int, delimiter: str) -> CsvReadError:
    message = (str(exc).splitlines() or [type(exc).__name__])[0]
    if "UTF8" in message or "UTF-8" in message:
        return CsvReadError(f"not UTF-8 text (invalid bytes after data row {rows})")
    return CsvReadError(
        f"not a valid CSV after data row {rows} (read with the delimiter {delimiter_name(delimiter)}): {message}"
    )


def _inferred_spec(name: str, values: pa.Array) -> FeatureSpec:
    """Training has no profile yet: a column is numeric when every present cell is a number."""
    probe = column_parse(FeatureSpec(name, CATEGORICAL, None, None, None, (), 0.0), values)
    present = pc.filter(probe.text, pa.array(~probe.missing))
    kind = CATEGORICAL
    if len(present):
        try:
            pc.cast(present, pa.float64())
            kind = NUMERIC
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            kind = CATEGORICAL
    return FeatureSpec(name, kind, None, None, None, (), 0.0)


def batch_typed(
    batch: pa.RecordBatch | pa.Table, specs: Mapping[str, FeatureSpec] | None = None, *, keep: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Columns typed (numbers float64, text with missing as None); without ``specs`` the types are inferred.
    ``keep`` columns are taken as they are (text)."""
    columns = {}
    for name in batch.schema.names:
        values = batch.column(name)
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if name in keep:
            columns[name] = values.to_pandas()
            continue
        spec = specs.get(name) if specs is not None else _inferred_spec(name, values)
        if spec is None:
            continue
        column = column_parse(spec, values)
        if spec.kind == NUMERIC:
            numbers = column.numbers.astype("float64", copy=True)
            numbers[column.missing | ~np.isfinite(numbers)] = np.nan
            if specs is None and not np.isnan(numbers).any() and np.all(np.mod(numbers, 1) == 0):
                columns[name] = numbers.astype("int64")  # as a whole-number column reads in pandas
            else:
                columns[name] = numbers
        else:
            text = column.text.to_numpy(zero_copy_only=False).astype(object)
            text[column.missing] = None
            columns[name] = pd.Series(text, dtype=object)
    return pd.DataFrame(columns)


def csv_frame_read(source: Source, *, profile: TrainingProfile | Mapping | None = None) -> pd.DataFrame:
    """The whole file as one typed DataFrame (training: types inferred; else the profile's features only)."""
    readable = _readable(source)
    header = csv_header(source, readable=readable)
    batches = list(csv_batches(source, header=header, readable=readable))
    table = pa.Table.from_batches(batches, schema=pa.schema([(name, pa.string()) for name in header]))
    frame = batch_typed(table, profile_read(profile).specs if profile is not None else None)
    frame.attrs["csv_delimiter"] = csv_delimiter(source, readable=readable)
    return frame


def csv_chunks_typed(
    source: Source, *, profile: TrainingProfile | Mapping, chunk_rows: int = CHUNK_ROWS, keep: tuple[str, ...] = ()
) -> Iterator[pd.DataFrame]:
    """Chunks of at most ``chunk_rows`` rows, the profile's features typed, ``keep`` columns as text."""
    specs = profile_read(profile).specs
    for batch in csv_batches(source, chunk_rows=chunk_rows):
        yield batch_typed(batch, specs, keep=keep)

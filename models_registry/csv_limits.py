"""Caps on a CSV's shape, checked before any reader parses it (ingestion, batch scoring).

A hostile or broken file (100,000 columns, a 1 GB line, a header that never ends)
must be refused in bounded memory and time, naming the limit it broke, before
pyarrow or the csv module allocate for it. `csv_limits_check` streams the bytes
once (numpy over 8 MiB blocks, about 0.1 s per 100 MB) and measures:

- the header: its length in bytes (up to the first line end) and its columns
  (parsed by the csv module, so a quoted comma is one name);
- every line: its length in bytes (``max_row_bytes``);
- every field: the bytes between two delimiters or line ends (``max_field_bytes``).

Lines and fields are measured as they appear in the file, without regard to
quotes: a quoted newline or delimiter splits what is measured, so a piece is
never longer than the record or cell it belongs to. A file it refuses always
broke the limit; a quoted cell full of delimiters can get past it and is then
bounded by the reader's block size instead.

The limits come from settings (``MLAPP_CSV_MAX_*``, docs/ingestion.md); callers
pass them in, the reader itself (`models_registry.csv_reader`) is unchanged.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings

from .csv_reader import HEAD_BYTES, CsvReadError

BLOCK_BYTES = 8 << 20
NEWLINE = 10


@dataclass(frozen=True)
class CsvLimits:
    max_columns: int = 1000  # MLAPP_CSV_MAX_COLUMNS
    max_header_bytes: int = 65536  # MLAPP_CSV_MAX_HEADER_BYTES (at most the reader's header window)
    max_field_bytes: int = 65536  # MLAPP_CSV_MAX_FIELD_BYTES
    max_row_bytes: int = 1 << 20  # MLAPP_CSV_MAX_ROW_BYTES

    def __post_init__(self):
        for name in ("max_columns", "max_header_bytes", "max_field_bytes", "max_row_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_header_bytes > HEAD_BYTES:
            raise ValueError(f"max_header_bytes must be at most {HEAD_BYTES} (the reader's header window)")

    @classmethod
    def from_settings(cls) -> CsvLimits:
        return cls(
            max_columns=settings.MLAPP_CSV_MAX_COLUMNS,
            max_header_bytes=settings.MLAPP_CSV_MAX_HEADER_BYTES,
            max_field_bytes=settings.MLAPP_CSV_MAX_FIELD_BYTES,
            max_row_bytes=settings.MLAPP_CSV_MAX_ROW_BYTES,
        )


class CsvLimitError(CsvReadError):
    """The file broke one of the caps; the message names it and its setting.

    ``lines``: data lines counted in the file (every line end after the header's),
    for the accounting of the quarantined file.
    """

    def __init__(self, message: str, *, lines: int):
        super().__init__(message, countable=True)
        self.lines = lines


def _header(path: Path, limits: CsvLimits) -> tuple[int, int]:
    """(header bytes including its line end, columns); a broken cap raises (lines counted later)."""
    with path.open("rb") as handle:
        head = handle.read(limits.max_header_bytes + 1)
    end = head.find(b"\n")
    if end < 0 and len(head) > limits.max_header_bytes:
        return -1, 0
    line = head if end < 0 else head[:end]
    text = line.decode("utf-8", errors="replace").lstrip("\ufeff")
    try:
        names = next(csv.reader(io.StringIO(text)), [])
    except csv.Error:
        names = text.split(",")
    return (len(head) if end < 0 else end + 1), len(names)


def _human(n: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n:,} bytes"


def csv_limits_check(path: str | Path, *, limits: CsvLimits, delimiter: bytes = b",") -> None:
    """Raise `CsvLimitError` naming the first cap ``path`` breaks (columns, header, field, row)."""
    path = Path(path)
    header_bytes, columns = _header(path, limits)
    problem = None
    if header_bytes < 0:
        problem = (
            f"the header is longer than {_human(limits.max_header_bytes)} "
            f"(MLAPP_CSV_MAX_HEADER_BYTES={limits.max_header_bytes})"
        )
    elif columns > limits.max_columns:
        problem = f"{columns:,} columns, more than MLAPP_CSV_MAX_COLUMNS={limits.max_columns:,}"
    lines, problem = _scan(path, limits, delimiter=delimiter[0], header_bytes=max(header_bytes, 0), problem=problem)
    if header_bytes < 0:
        lines = max(lines - 1, 0)  # the scan started at the header's first byte
    if problem:
        raise CsvLimitError(problem, lines=lines)


def _scan(path: Path, limits: CsvLimits, *, delimiter: int, header_bytes: int, problem: str | None):
    """(data lines, the first broken cap or None): lines and fields measured until a cap breaks, lines
    counted to the end."""
    lines = 0
    offset = line_start = field_start = header_bytes  # file offsets: this block, the open line and field
    last = NEWLINE
    with path.open("rb") as handle:
        handle.seek(header_bytes)
        while block := handle.read(BLOCK_BYTES):
            last = block[-1]
            if problem is not None:  # refused already: only count the lines
                lines += block.count(b"\n")
                continue
            data = np.frombuffer(block, dtype=np.uint8)
            is_newline = data == NEWLINE
            newlines = np.flatnonzero(is_newline)
            first_line = lines + 1  # the data line this block starts in (1-based)
            lines += len(newlines)
            separators = np.flatnonzero(is_newline | (data == delimiter))
            problem = _measure(newlines, separators, offset, line_start, field_start, limits, first_line)
            end = offset + len(block)
            line_start = offset + int(newlines[-1]) + 1 if newlines.size else line_start
            field_start = offset + int(separators[-1]) + 1 if separators.size else field_start
            if problem is None and end - line_start > limits.max_row_bytes:
                problem = _row_problem(lines + 1, limits)
            if problem is None and end - field_start > limits.max_field_bytes:
                problem = _field_problem(lines + 1, limits)
            offset += len(block)
    if last != NEWLINE:
        lines += 1  # the last line has no line end
    return lines, problem


def _measure(newlines, separators, offset, line_start, field_start, limits, first_line) -> str | None:
    if newlines.size:
        widths = newlines - np.concatenate(([line_start - offset], newlines[:-1] + 1))  # without the line end
        wide = np.flatnonzero(widths > limits.max_row_bytes)
        if wide.size:
            return _row_problem(first_line + int(wide[0]), limits)
    if separators.size:
        sizes = separators - np.concatenate(([field_start - offset], separators[:-1] + 1))
        big = np.flatnonzero(sizes > limits.max_field_bytes)
        if big.size:
            line = first_line + int(np.searchsorted(newlines, separators[big[0]]))
            return _field_problem(line, limits)
    return None


def _row_problem(line: int, limits: CsvLimits) -> str:
    return (
        f"data line {line:,} is longer than {_human(limits.max_row_bytes)} "
        f"(MLAPP_CSV_MAX_ROW_BYTES={limits.max_row_bytes})"
    )


def _field_problem(line: int, limits: CsvLimits) -> str:
    return (
        f"a field on data line {line:,} is longer than {_human(limits.max_field_bytes)} "
        f"(MLAPP_CSV_MAX_FIELD_BYTES={limits.max_field_bytes})"
    )

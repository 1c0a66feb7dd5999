"""Writing the inference log in bulk.

PostgreSQL: one binary COPY per chunk, its payload built here (features and
probabilities serialised to JSON by pandas in C), several times Django's
bulk_create. Rows keyed by (good file, row, model version) go through a
temporary table and INSERT ... ON CONFLICT DO NOTHING, so a scheduled job that
runs twice writes each row once. SQLite (embedded default): bulk_create.
"""

from __future__ import annotations

import functools
import json
import struct
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import repeat

import numpy as np
import pandas as pd
import psycopg
from django.db import connection, models, transaction
from django.utils import timezone

from models_registry.serving import ModelOutputs, ServedModel

from ..models import Prediction

COLUMNS = [
    "created_at",
    "model_name",
    "model_version",
    "run_id",
    "source",
    "request_id",
    "features",
    "predicted_label",
    "predicted_value",
    "probabilities",
    "latency_ms",
    "batch_job_id",
    "good_file_id",
    "row_number",
]
SQLITE_BATCH = 1000


@dataclass(frozen=True)
class RowContext:
    """What made a set of predictions (the same for every row of one write)."""

    source: str
    request_id: str
    batch_job_id: int | None = None
    good_file_id: int | None = None
    latency_ms: float | None = None


def _json_text(frame: pd.DataFrame) -> str:
    """One JSON object per row, a line each (serialised by pandas in C)."""
    return frame.to_json(orient="records", lines=True, double_precision=10).rstrip("\n")


def _json_lines(frame: pd.DataFrame) -> list[str]:
    return _json_text(frame).split("\n") if not frame.empty else []


def _probability_frame(outputs: ModelOutputs) -> pd.DataFrame:
    """Class probabilities as logged: one column per class, rounded to 6 decimals."""
    return pd.DataFrame(np.round(outputs.probabilities, 6), columns=list(outputs.classes))


def _log_frame(
    *, served: ServedModel, features: pd.DataFrame, outputs: ModelOutputs, context: RowContext, row_numbers
) -> pd.DataFrame:
    n = len(features)
    log = pd.DataFrame(index=range(n))
    log["created_at"] = timezone.now().isoformat()
    log["model_name"] = served.name
    log["model_version"] = served.version
    log["run_id"] = served.run_id
    log["source"] = context.source
    log["request_id"] = context.request_id
    log["features"] = _json_lines(features[served.feature_names].reset_index(drop=True))
    log["predicted_label"] = outputs.labels if outputs.labels is not None else None
    log["predicted_value"] = outputs.values if outputs.values is not None else None
    if outputs.probabilities is not None:
        log["probabilities"] = _json_lines(_probability_frame(outputs))
    else:
        log["probabilities"] = None
    log["latency_ms"] = context.latency_ms
    log["batch_job_id"] = context.batch_job_id
    log["good_file_id"] = context.good_file_id
    log["row_number"] = np.asarray(row_numbers) if row_numbers is not None else None
    return log


# Binary COPY, the payload built here in one pass: the fields that are the same for
# every row of a write are encoded once, and each row adds only its features,
# output and probabilities. psycopg's per-row `write_row` cost ~3x as much.
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_COPY_TRAILER = b"\xff\xff"
_NULL = b"\xff\xff\xff\xff"
_POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_int2, _int4, _int8, _float8 = (struct.Struct(f">{code}").pack for code in "hiqd")


def _text_field(value: str | None) -> bytes:
    if value is None:
        return _NULL
    data = value.encode()
    return _int4(len(data)) + data


def _fixed_field(pack, size: int, value) -> bytes:
    return _NULL if value is None else _int4(size) + pack(value)


def _jsonb_values(frame: pd.DataFrame) -> list[bytes]:
    """Rows as jsonb in binary COPY format: a version byte (1), then the JSON text
    (the server parses it as it would from text)."""
    if frame.empty:
        return []
    return [b"\x01" + line for line in _json_text(frame).encode().split(b"\n")]


def _copy_payload(
    *, served: ServedModel, features: pd.DataFrame, outputs: ModelOutputs, context: RowContext, row_numbers
) -> bytes:
    """One chunk of rows in COPY BINARY format, columns in `COLUMNS` order."""
    n = len(features)
    microseconds = (timezone.now() - _POSTGRES_EPOCH) // timedelta(microseconds=1)
    head = b"".join(
        [
            _int2(len(COLUMNS)),
            _fixed_field(_int8, 8, microseconds),  # created_at (timestamptz)
            _text_field(served.name),
            _fixed_field(_int4, 4, served.version),
            _text_field(served.run_id),
            _text_field(str(context.source)),
            _text_field(context.request_id),
        ]
    )
    tail = b"".join(
        [
            _fixed_field(_float8, 8, context.latency_ms),
            _fixed_field(_int8, 8, context.batch_job_id),
            _fixed_field(_int8, 8, context.good_file_id),
        ]
    )
    features_jsonb = _jsonb_values(features[served.feature_names])
    if outputs.labels is not None:
        outcome = [_text_field(label) + _NULL for label in outputs.labels.tolist()]  # label, no value
    else:
        outcome = [_NULL + _int4(8) + _float8(value) for value in outputs.values.tolist()]
    if outputs.probabilities is not None:
        probabilities = [_int4(len(value)) + value for value in _jsonb_values(_probability_frame(outputs))]
    else:
        probabilities = repeat(_NULL, n)
    if row_numbers is not None:
        numbers = [_int4(4) + _int4(number) for number in np.asarray(row_numbers).tolist()]
    else:
        numbers = repeat(_NULL, n)
    if len(features_jsonb) != n or len(outcome) != n:
        raise ValueError(f"{n} rows but {len(features_jsonb)} feature objects and {len(outcome)} outputs")
    parts = [_COPY_SIGNATURE]
    add = parts.append
    for feature, output, probability, number in zip(features_jsonb, outcome, probabilities, numbers, strict=False):
        add(head)
        add(_int4(len(feature)))
        add(feature)
        add(output)
        add(probability)
        add(tail)
        add(number)
    add(_COPY_TRAILER)
    return b"".join(parts)


def _copy_postgresql(payload: bytes, *, n_rows: int, skip_existing: bool) -> int:
    table = Prediction._meta.db_table
    columns = ", ".join(COLUMNS)
    with connection.cursor() as cursor:
        raw = cursor.connection  # psycopg 3
        with raw.cursor() as pg:
            target = table
            if skip_existing:
                # Our columns only (no id, no constraints): rows land here, then go in unless stored already.
                pg.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS prediction_staging ON COMMIT DELETE ROWS "
                    f"AS SELECT {columns} FROM {table} WITH NO DATA"
                )
                target = "prediction_staging"
            with pg.copy(f"COPY {target} ({columns}) FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.write(payload)
            if not skip_existing:
                return n_rows
            pg.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM prediction_staging "
                "ON CONFLICT (good_file_id, row_number, model_name, model_version) "
                "WHERE good_file_id IS NOT NULL DO NOTHING"
            )
            written = pg.rowcount
            pg.execute("TRUNCATE prediction_staging")
            return written


def inference_rows_insert(rows: list[dict]) -> list[int]:
    """Store a request's inference-log rows, atomically, in as few round trips as can be; their ids.

    Each row maps `Prediction` field attnames (``created_by_id``, not ``created_by``) to values; a
    field left out is NULL or its default. One row (nearly every on-demand request) is one
    `INSERT ... RETURNING` in autocommit: a single statement is atomic by itself, so the `BEGIN` and
    `COMMIT` that `bulk_create` wraps around it would be two more round trips for nothing
    (bench/profile_predict.py). Several rows: `bulk_create`, in one transaction.
    """
    if len(rows) == 1 and connection.features.can_return_columns_from_insert:
        return [_row_insert(rows[0])]
    return [row.pk for row in Prediction.objects.bulk_create([Prediction(**row) for row in rows])]


@functools.cache
def _row_insert_statement(columns: tuple[str, ...]) -> tuple[str, tuple]:
    """The one-row INSERT of these columns, built once per process, and each column's adapter (None:
    the value goes as it is)."""
    fields = [Prediction._meta.get_field(column) for column in columns]
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(Prediction._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {quote(Prediction._meta.pk.column)}"
    )
    return sql, tuple(_value_adapter(field) for field in fields)


def _value_adapter(field):
    """What Django's field would do to a value of the type the service gives it, when that is not
    nothing: JSON and timestamps are the backend's to encode (SQLite keeps timestamps as text in
    Django's own format, naive UTC); text and numbers go to the driver as they are."""
    if isinstance(field, models.JSONField):
        return functools.partial(_json_adapted, encoder=field.encoder)
    if isinstance(field, models.DateTimeField):
        return connection.ops.adapt_datetimefield_value
    return None


def _json_adapted(value, *, encoder):
    return None if value is None else connection.ops.adapt_json_value(value, encoder)


def _row_insert(row: dict) -> int:
    """`Prediction(**row).save()` as one precompiled statement; the new id.

    What `save` would spend per request goes: building a model instance, compiling the statement and
    preparing every value through its field (`_value_adapter` keeps the part that changes anything).
    tests/predictions/test_store.py holds the stored row equal to `save`'s, as the database holds it.
    On PostgreSQL the statement is a server-side prepared statement with its values sent bound:
    Django's cursors bind client-side, which rebuilds and re-quotes the whole statement in Python for
    every row; the database would then parse and plan it again. Django's cursor checks still run
    first there: the connection health check, a usable connection, no statement inside a failed
    transaction, and its exception classes.
    """
    sql, adapters = _row_insert_statement(tuple(row))
    values = [value if adapt is None else adapt(value) for value, adapt in zip(row.values(), adapters, strict=True)]
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, values)
            return cursor.fetchone()[0]
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    with connection.wrap_database_errors:
        cursor = _insert_cursor(connection.connection)
        cursor.execute(sql, values, prepare=True)
        return cursor.fetchone()[0]


_insert_cursors = threading.local()


def _insert_cursor(raw: psycopg.Connection) -> psycopg.Cursor:
    """One psycopg cursor per connection for the one-row INSERT, kept while the connection lives:
    a new cursor starts with no adapters looked up (a fifth of the INSERT's CPU in a loop: 118 against
    90-100 us, bench/README.md). Per thread, as Django's connections are."""
    cursor = getattr(_insert_cursors, "cursor", None)
    if cursor is None or cursor.connection is not raw or cursor.closed:
        cursor = _insert_cursors.cursor = psycopg.Cursor(raw)
    return cursor


def _bulk_create(log: pd.DataFrame, *, skip_existing: bool) -> int:
    def none_if_nan(value):
        return None if value is None or (isinstance(value, float) and np.isnan(value)) else value

    objects = [
        Prediction(
            created_at=row.created_at,
            model_name=row.model_name,
            model_version=int(row.model_version),
            run_id=row.run_id,
            source=row.source,
            request_id=row.request_id,
            features=json.loads(row.features),
            predicted_label=none_if_nan(row.predicted_label),
            predicted_value=none_if_nan(row.predicted_value),
            probabilities=json.loads(row.probabilities) if isinstance(row.probabilities, str) else None,
            latency_ms=none_if_nan(row.latency_ms),
            batch_job_id=none_if_nan(row.batch_job_id),
            good_file_id=none_if_nan(row.good_file_id),
            row_number=None if none_if_nan(row.row_number) is None else int(row.row_number),
        )
        for row in log.itertuples(index=False)
    ]
    before = Prediction.objects.count() if skip_existing else 0
    Prediction.objects.bulk_create(objects, batch_size=SQLITE_BATCH, ignore_conflicts=skip_existing)
    return Prediction.objects.count() - before if skip_existing else len(objects)


def prediction_rows_write(
    *,
    served: ServedModel,
    features: pd.DataFrame,
    outputs: ModelOutputs,
    context: RowContext,
    row_numbers=None,
    skip_existing: bool = False,
) -> int:
    """Store one chunk of scored rows; returns how many rows were written.

    `skip_existing`: rows already stored for the same (good file, row, model
    version) are left as they are (idempotent scheduled scoring).
    """
    if len(features) == 0:
        return 0
    with transaction.atomic():
        if connection.vendor == "postgresql":
            payload = _copy_payload(
                served=served, features=features, outputs=outputs, context=context, row_numbers=row_numbers
            )
            return _copy_postgresql(payload, n_rows=len(features), skip_existing=skip_existing)
        log = _log_frame(served=served, features=features, outputs=outputs, context=context, row_numbers=row_numbers)
        return _bulk_create(log, skip_existing=skip_existing)

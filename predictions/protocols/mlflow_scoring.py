"""MLflow's scoring protocol (`mlflow models serve`, `POST /invocations`), per model.

The request rules and error texts are MLflow's own (mlflow/pyfunc/scoring_server/__init__.py and
mlflow/utils/proto_json_utils.py): the constants are imported from there so the texts cannot drift.
Where MLflow would cast a value to the signature's type (a boolean to 1.0, a float to float32), the
rows go to the model's rule table unchanged and a wrong value is refused by name.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping

from mlflow.exceptions import MlflowException
from mlflow.protos import databricks_pb2
from mlflow.pyfunc.scoring_server import (
    REQUIRED_INPUT_FORMAT,
    SCORING_PROTOCOL_CHANGE_INFO,
    SERVING_PARAMS_KEY,
    SUPPORTED_FORMATS,
)

from models_registry.profile import FeatureSpec

from . import ProtocolError, text_rows_typed

CONTENT_TYPE_CSV = "text/csv"
CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPES = [CONTENT_TYPE_CSV, CONTENT_TYPE_JSON]
ECHO_CHARS = 200  # of a body that is not JSON, quoted back


def _invalid(message: str) -> ProtocolError:
    """MLflow's `MlflowInvalidInputException`: BAD_REQUEST, "Invalid input. <message>"."""
    return ProtocolError(f"Invalid input. {message}")


def content_type_check(content_type: str | None) -> str:
    """The media type of an invocation (`text/csv` or `application/json`), checked as MLflow does:
    a charset other than UTF-8, a parameter other than charset, or another type is a 415 (text/plain)."""
    parts = [part.strip() for part in (content_type or "").split(";")]
    mime_type = parts[0].lower()
    parameters = {key.strip().lower(): value.strip() for key, _, value in (p.partition("=") for p in parts[1:])}
    if parameters.get("charset", "utf-8").strip('"').lower() != "utf-8":
        raise ProtocolError("The scoring server only supports UTF-8", status=415, plain_text=True)
    if unexpected := set(parameters).difference({"charset"}):
        raise ProtocolError(
            f"Unrecognized content type parameters: {', '.join(sorted(unexpected))}. {SCORING_PROTOCOL_CHANGE_INFO}",
            status=415,
            plain_text=True,
        )
    if mime_type not in CONTENT_TYPES:
        raise ProtocolError(
            f"This predictor only supports the following content types: Types: {CONTENT_TYPES}. "
            f"Got '{content_type or ''}'.",
            status=415,
            plain_text=True,
        )
    return mime_type


def invocation_records(*, body: bytes, content_type: str | None, specs: Mapping[str, FeatureSpec]) -> list:
    """The rows of an invocation body, as JSON objects by feature name (not yet checked: the rule table
    does that). Raises `ProtocolError` with MLflow's message for a body not in the protocol's shape."""
    mime_type = content_type_check(content_type)
    if mime_type == CONTENT_TYPE_CSV:
        return csv_records(body, specs)
    return json_records(body)


def json_records(body: bytes) -> list:
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        echo = body[:ECHO_CHARS].decode("utf-8", "backslashreplace")
        raise _invalid(f"Ensure that input is a valid JSON formatted string. Error: '{exc!r}'\nInput: \n{echo}\n")
    if isinstance(decoded, list):
        raise _invalid(f"{REQUIRED_INPUT_FORMAT}. Received a list.")
    if not isinstance(decoded, dict):
        raise _invalid(f"{REQUIRED_INPUT_FORMAT}. Received unexpected input type '{type(decoded)}.")
    params = decoded.get(SERVING_PARAMS_KEY)
    if params is not None and not isinstance(params, dict):
        raise _invalid(f"'{SERVING_PARAMS_KEY}' must be a JSON object, got {type(params).__name__}")
    data = {key: value for key, value in decoded.items() if key in SUPPORTED_FORMATS}
    if len(data) != 1:
        # MLflow's MlflowException(BAD_REQUEST) here, without the "Invalid input." prefix.
        raise ProtocolError(
            f"{REQUIRED_INPUT_FORMAT}. Received dictionary with input fields: {list(data.keys())}. "
            f"{SCORING_PROTOCOL_CHANGE_INFO}"
        )
    (input_format, value), *_ = data.items()
    if input_format == "dataframe_records":
        if not isinstance(value, list):
            kind = "dictionary" if isinstance(value, dict) else f"type {type(value)}"
            raise _invalid(f"Dataframe records format must be a list of records. Got {kind}.")
        return value
    if input_format == "dataframe_split":
        return _split_records(value)
    return _tensor_records(input_format, value)


def _split_records(value) -> list:
    if not isinstance(value, dict):
        kind = "list" if isinstance(value, list) else f"type {type(value)}"
        raise _invalid(f"Dataframe split format must be a dictionary. Got {kind}.")
    keys = set(value.keys())
    if "data" not in keys or keys.difference({"columns", "data", "index"}):
        raise _invalid(
            f"Dataframe split format must have 'data' field and optionally 'columns' and 'index' fields. Got {keys}.'"
        )
    columns, data = value.get("columns"), value["data"]
    if not isinstance(columns, list) or not all(isinstance(name, str) for name in columns):
        raise _invalid("dataframe_split needs 'columns', a list of the feature names (values are matched by name)")
    if not isinstance(data, list):
        raise _invalid(
            "Provided dataframe_split field is not a valid dataframe representation in 'split' format. "
            "Error: ''data' must be a list of rows'"
        )
    records = []
    for index, row in enumerate(data):
        if len(columns) == 1 and not isinstance(row, list):
            row = [row]
        if not isinstance(row, list) or len(row) != len(columns):
            got = f"{len(row)} values" if isinstance(row, list) else type(row).__name__
            raise _invalid(
                "Provided dataframe_split field is not a valid dataframe representation in 'split' format. "
                f"Error: 'row {index} has {got} for {len(columns)} columns'"
            )
        records.append(dict(zip(columns, row, strict=True)))
    return records


def _tensor_records(input_format: str, value) -> list:
    """`instances` and `inputs` (TF serving's formats): rows as objects, or columns as an object of lists."""
    if isinstance(value, list) and all(isinstance(row, dict) for row in value):
        return value
    if isinstance(value, dict):
        if not any(isinstance(column, list) for column in value.values()):
            return [value]  # one row, each feature a scalar
        lengths = {len(column) if isinstance(column, list) else None for column in value.values()}
        if len(lengths) != 1 or None in lengths:
            raise _invalid("The length of values for each input/column name are not the same")
        names = list(value)
        return [dict(zip(names, cells, strict=True)) for cells in zip(*value.values(), strict=True)]
    raise _invalid(
        f"'{input_format}' must hold rows as objects ([{{\"feature\": value, ...}}]) or columns as an object of "
        'lists ({"feature": [value, ...]}): values are matched to features by name'
    )


def csv_records(body: bytes, specs: Mapping[str, FeatureSpec]) -> list:
    """A CSV body (header row, then rows) as typed rows. A first column with an empty header (the index
    `DataFrame.to_csv()` writes) is left out."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(f"Ensure that input is a valid UTF-8 encoded string. Error: '{exc!r}'") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header:
            raise csv.Error("No columns to parse from file")
        skip_index = header[0] == ""
        names = header[1:] if skip_index else header
        rows = []
        for number, cells in enumerate(reader, start=2):
            if not cells:
                continue  # a blank line
            cells = cells[1:] if skip_index else cells
            if len(cells) != len(names):
                raise csv.Error(f"Expected {len(names)} fields in line {number}, saw {len(cells)}")
            rows.append(dict(zip(names, cells, strict=True)))
    except csv.Error as exc:
        raise ProtocolError(
            "Failed to parse input as a Pandas DataFrame. Ensure that the input is a valid CSV-formatted Pandas "
            f"DataFrame produced using the `pandas.DataFrame.to_csv()` method. Error: '{exc}'"
        ) from exc
    return text_rows_typed(specs, rows)


def predictions_body(predictions: list) -> bytes:
    """MLflow's answer: `{"predictions": [...]}`, a label or a value per row."""
    return json.dumps({"predictions": predictions}).encode()


_ERROR_CODES = {
    400: databricks_pb2.BAD_REQUEST,
    401: databricks_pb2.UNAUTHENTICATED,
    403: databricks_pb2.PERMISSION_DENIED,
    404: databricks_pb2.RESOURCE_DOES_NOT_EXIST,
    413: databricks_pb2.BAD_REQUEST,
    429: databricks_pb2.REQUEST_LIMIT_EXCEEDED,
    503: databricks_pb2.TEMPORARILY_UNAVAILABLE,
}


def error_body(status: int, message: str, errors: list | None = None) -> bytes:
    """MLflow's error body, made by MLflow (`MlflowException.serialize_as_json`: `error_code`, `message`,
    and the `sqlstate` / `error_class` it derives), plus mlapp's per-field `errors` when any."""
    code = _ERROR_CODES.get(status, databricks_pb2.INTERNAL_ERROR if status >= 500 else databricks_pb2.BAD_REQUEST)
    extra = {"errors": errors} if errors else {}
    return MlflowException(message, error_code=code, **extra).serialize_as_json().encode()

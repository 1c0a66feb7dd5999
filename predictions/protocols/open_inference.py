"""The Open Inference Protocol ("V2": KServe, Triton, MLServer) over REST, for mlapp's tabular models.

A model's metadata comes from its training profile (the features of its signature): a numeric
feature is an `FP64` tensor (`INT64` when it held whole numbers), a categorical one `BYTES`, each of
shape `[-1, 1]`. An infer request sends one tensor per feature, or one table tensor of shape
`[rows, features]` (columns in the metadata's order; `BYTES`, or a numeric type when every feature is
numeric). Tensors may come as JSON `data` or in Triton's binary tensor extension (what `tritonclient`
sends by default): the JSON header, `Inference-Header-Content-Length` bytes long, then each binary
input in order. The answer is JSON: `predict` (the label, or the value) and, for a classifier,
`probability_<class>` per class, each of shape `[rows, 1]`.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from math import prod

import numpy as np

from models_registry.profile import FeatureSpec

from . import ProtocolError, text_cell_typed

NUMERIC_TYPES = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
PREDICT = "predict"
PROBABILITY = "probability_"
MAX_ID_CHARS = 64  # the inference log's request_id


def feature_datatype(spec: FeatureSpec) -> str:
    if spec.is_numeric:
        return "INT64" if spec.is_integer else "FP64"
    return "BYTES"


def output_names(*, classes: list[str] | None) -> list[str]:
    return [PREDICT, *(f"{PROBABILITY}{name}" for name in classes or [])]


def model_metadata(*, name: str, versions: list[int], specs: Mapping[str, FeatureSpec], classes) -> dict:
    """`GET /v2/models/{name}[/versions/{v}]`: the tensors the model takes and gives."""
    outputs = [{"name": PREDICT, "datatype": "BYTES" if classes else "FP64", "shape": [-1, 1]}]
    outputs += [{"name": f"{PROBABILITY}{c}", "datatype": "FP64", "shape": [-1, 1]} for c in classes or []]
    return {
        "name": name,
        "versions": [str(v) for v in versions],
        "platform": "mlapp_sklearn",
        "inputs": [{"name": n, "datatype": feature_datatype(s), "shape": [-1, 1]} for n, s in specs.items()],
        "outputs": outputs,
    }


@dataclass(frozen=True)
class InferRequest:
    request_id: str | None
    records: list[dict]
    outputs: list[str] | None  # None: every output


def _header_and_buffers(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    if header_length is None:
        json_part, binary = body, b""
    else:
        try:
            size = int(header_length)
        except ValueError:
            size = -1
        if not 0 <= size <= len(body):
            raise ProtocolError(
                f"Inference-Header-Content-Length {header_length!r} does not fit a {len(body)}-byte body"
            )
        json_part, binary = body[:size], body[size:]
    try:
        header = json.loads(json_part)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"the request is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolError(f"the request must be a JSON object, got {type(header).__name__}")
    return header, binary


def _flatten(data) -> list:
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(item, list) for item in data):
        return data
    return [value for item in data for value in _flatten(item)]


def _deserialize_bytes(raw: bytes, where: str) -> list[str]:
    values, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise ProtocolError(f"{where}: BYTES data ends inside an element's length")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise ProtocolError(f"{where}: BYTES element of {length} bytes runs past the data")
        try:
            values.append(raw[offset : offset + length].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"{where}: BYTES element is not UTF-8 text ({exc.reason})") from exc
        offset += length
    return values


def _tensor_values(tensor: dict, binary: bytes, offset: int, where: str) -> tuple[list, list[int], int]:
    """(flat values, shape, next binary offset) of one input tensor."""
    datatype, shape = tensor.get("datatype"), tensor.get("shape")
    if datatype != "BYTES" and datatype not in NUMERIC_TYPES:
        raise ProtocolError(f"{where}: unsupported datatype {datatype!r}")
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ProtocolError(f"{where}: shape must be a list of non-negative integers, got {shape!r}")
    parameters = tensor.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ProtocolError(f"{where}: parameters must be an object")
    size = parameters.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise ProtocolError(f"{where}: binary_data_size {size!r} runs past the binary data")
        raw = binary[offset : offset + size]
        offset += size
        if datatype == "BYTES":
            values = _deserialize_bytes(raw, where)
        else:
            dtype = np.dtype(NUMERIC_TYPES[datatype])
            if size % dtype.itemsize:
                raise ProtocolError(f"{where}: {size} bytes is not a whole number of {datatype} values")
            values = np.frombuffer(raw, dtype=dtype).tolist()
    else:
        if "data" not in tensor:
            raise ProtocolError(f"{where}: no data (neither 'data' nor binary_data_size)")
        values = _flatten(tensor["data"])
    if len(values) != prod(shape):
        raise ProtocolError(f"{where}: shape {shape} holds {prod(shape)} values, data has {len(values)}")
    return values, shape, offset


def _typed(spec: FeatureSpec, value, datatype: str, where: str):
    """A tensor element as the JSON value the rules read; a datatype that cannot carry the feature is refused."""
    if datatype == "BYTES":
        return text_cell_typed(spec, value) if isinstance(value, str) else value
    if datatype == "BOOL" or not spec.is_numeric:
        raise ProtocolError(
            f"{where}: datatype {datatype} for feature {spec.name!r}, expected {feature_datatype(spec)}"
        )
    return value


def infer_request_read(
    *, body: bytes, header_length: str | None, specs: Mapping[str, FeatureSpec], classes: list[str] | None
) -> InferRequest:
    """An infer request's rows by feature name (not yet checked: the rule table does that)."""
    header, binary = _header_and_buffers(body, header_length)
    request_id = header.get("id")
    if request_id is not None and (not isinstance(request_id, str) or len(request_id) > MAX_ID_CHARS):
        raise ProtocolError(f"id must be a string of at most {MAX_ID_CHARS} characters")
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, dict) for t in inputs):
        raise ProtocolError("inputs must be a non-empty list of tensors")
    outputs = header.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
        ):
            raise ProtocolError("outputs must be a list of objects with a name")
        outputs = [o["name"] for o in outputs]
        known = output_names(classes=classes)
        if unknown := [name for name in outputs if name not in known]:
            raise ProtocolError(f"unknown output {unknown[0]!r} (outputs: {', '.join(known)})")
    names = [tensor.get("name") for tensor in inputs]
    if not all(isinstance(name, str) for name in names):
        raise ProtocolError("every input needs a name")
    if len(set(names)) != len(names):
        raise ProtocolError(f"input {next(n for n in names if names.count(n) > 1)!r} is given twice")
    if len(inputs) == 1 and names[0] not in specs and len(specs) > 1:
        return InferRequest(request_id, _table_records(inputs[0], binary, specs), outputs)
    columns, offset, rows = {}, 0, None
    for tensor in inputs:
        where = f"input {tensor['name']!r}"
        values, shape, offset = _tensor_values(tensor, binary, offset, where)
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise ProtocolError(f"{where}: shape {shape}, expected [rows] or [rows, 1] (one value per row)")
        if rows is not None and shape[0] != rows:
            raise ProtocolError(f"{where}: {shape[0]} rows, the first input has {rows}")
        rows = shape[0]
        spec = specs.get(tensor["name"])
        columns[tensor["name"]] = (
            [_typed(spec, value, tensor["datatype"], where) for value in values] if spec is not None else values
        )
    records = [dict(zip(columns, cells, strict=True)) for cells in zip(*columns.values(), strict=True)]
    return InferRequest(request_id, records, outputs)


def _table_records(tensor: dict, binary: bytes, specs: Mapping[str, FeatureSpec]) -> list[dict]:
    """One tensor of shape [rows, features], columns in the metadata's order."""
    where = f"input {tensor['name']!r}"
    values, shape, _ = _tensor_values(tensor, binary, 0, where)
    names = list(specs)
    if len(shape) != 2 or shape[1] != len(names):
        raise ProtocolError(
            f"{where} is not a feature of the model; as one table it must have shape [rows, {len(names)}] "
            f"(columns {', '.join(names)}), got {shape}"
        )
    datatype = tensor["datatype"]
    typed = [_typed(specs[names[i % len(names)]], value, datatype, where) for i, value in enumerate(values)]
    return [dict(zip(names, typed[i : i + len(names)], strict=True)) for i in range(0, len(typed), len(names))]


def infer_response(
    *,
    model_name: str,
    model_version: int,
    request_id: str | None,
    predictions: list,
    probabilities: list[dict] | None,
    classes: list[str] | None,
    outputs: list[str] | None,
) -> dict:
    """The answer of an infer request: the outputs asked for (all of them when none were named)."""
    wanted = output_names(classes=classes if probabilities is not None else None) if outputs is None else outputs
    n = len(predictions)
    tensors = []
    for name in wanted:
        if name == PREDICT:
            datatype = "BYTES" if probabilities is not None else "FP64"
            tensors.append({"name": name, "datatype": datatype, "shape": [n, 1], "data": predictions})
        else:
            label = name[len(PROBABILITY) :]
            tensors.append(
                {"name": name, "datatype": "FP64", "shape": [n, 1], "data": [row[label] for row in probabilities]}
            )
    body = {"model_name": model_name, "model_version": str(model_version), "outputs": tensors}
    if request_id is not None:
        body["id"] = request_id
    return body

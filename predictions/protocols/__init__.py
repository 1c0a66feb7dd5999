"""Wire formats other servers speak, translated to and from the rows `predictions_make` takes.

- `mlflow_scoring`: `mlflow models serve`'s `/invocations` (dataframe_split, dataframe_records,
  instances, inputs, text/csv), its content-type rules and its error texts;
- `open_inference`: the Open Inference Protocol (KServe / Triton / MLServer "V2") over REST, with
  Triton's binary tensor extension (what `tritonclient` sends by default).

Pure functions: bytes and headers in, JSON rows out (or a `ProtocolError` naming the problem), and
the service's answer shaped back. No database, no model loading: the views in `apis_serving.py`
call `predictions_make`, the same service as `POST /api/v1/models/{name}/predict/`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from models_registry.profile import FeatureSpec
from models_registry.rules import MISSING_TOKENS, NUMBER


class ProtocolError(Exception):
    """The request is not in the protocol's shape; `message` says how (status 400 unless told)."""

    def __init__(self, message: str, *, status: int = 400, plain_text: bool = False):
        super().__init__(message)
        self.message = message
        self.status = status
        self.plain_text = plain_text  # MLflow answers its 415s as text/plain


_NUMBER = re.compile(NUMBER)
_INTEGER = re.compile(r"^[+-]?\d+$")


def text_cell_typed(spec: FeatureSpec, text: str):
    """A cell that came as text (CSV, a BYTES tensor) as the JSON value the rules read.

    Missing tokens are null; a numeric feature's number becomes an int or float; anything else stays
    text, so the type rule names the field and the value ("wrong type: expected a number, got str ...").
    """
    stripped = text.strip()
    if stripped in MISSING_TOKENS:
        return None
    if not spec.is_numeric:
        return stripped
    if _NUMBER.match(stripped):
        return int(stripped) if _INTEGER.match(stripped) else float(stripped)
    return text


def text_rows_typed(specs: Mapping[str, FeatureSpec], rows: list[dict]) -> list[dict]:
    """Rows of text cells typed by `text_cell_typed`; columns that are not features are left as they are
    (the shape check names them)."""
    return [
        {
            name: text_cell_typed(specs[name], value) if name in specs and isinstance(value, str) else value
            for name, value in row.items()
        }
        for row in rows
    ]

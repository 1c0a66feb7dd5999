"""OpenAPI schema generation (drf-spectacular) for our API style.

API views nest their serializers (`PredictApi.OutputSerializer`, HackSoft style),
so many are called `OutputSerializer`; drf-spectacular names components by class
name and would merge them. Components are named from the qualified name instead:
`PredictApi.OutputSerializer.RowSerializer` -> `PredictOutputRow`.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema


class NestedSerializerAutoSchema(AutoSchema):
    def get_serializer_name(self, serializer, direction):
        parts = type(serializer).__qualname__.split(".")
        return "".join(part.removesuffix("Serializer").removesuffix("Api") for part in parts)


# Every error body has one shape (core/api_errors.py); every operation may answer these.
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "detail": {"type": "string", "description": "What is wrong, one sentence"},
        "errors": {
            "type": "array",
            "description": "The offending fields (and rows), when particular input is wrong",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string", "nullable": True},
                    "problem": {"type": "string"},
                    "row": {"type": "integer", "nullable": True},
                },
                "required": ["field", "problem"],
            },
        },
    },
    "required": ["detail"],
}
ERRORS = {
    "400": "Invalid input: `errors` names each field (and row) and the problem",
    "401": "No credentials, or a token that does not exist",
    "403": "Authenticated, but not allowed (staff only, or someone else's)",
    "404": "No such model, version or record (or not one the caller may see)",
    "409": "Refused by a rule of the registry (e.g. a schema change to confirm)",
    "413": "The request body is larger than MLAPP_MAX_BODY_MB",
    "429": "Past the caller's request budget; Retry-After says when to come back",
    "503": "The database or the model registry is unavailable; retry later",
}


def error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: each operation documents the error answers it can give
    (a body can be a 413, a write a 409), in the one shape."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"$ref": "#/components/schemas/Error"}
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue  # /serving/ and /v2/ answer in their protocols' own error shapes
        for method, operation in operations.items():
            # 404 everywhere: a path's model or record, or a list's stale pagination cursor.
            codes = ["400", "401", "403", "404", "429", "503"]
            if method in ("post", "put", "patch"):
                codes += ["409", "413"]
            responses = operation.setdefault("responses", {})
            for code in codes:
                answer = responses.setdefault(code, {"description": ERRORS[code]})
                answer["content"] = {"application/json": {"schema": reference}}
    return result


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """`Authorization: Bearer <token>` (core.authentication.BearerTokenAuthentication): the same API
    tokens as `Token <key>`, as an HTTP bearer scheme of its own."""

    target_class = "core.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "The API token, as `Bearer <key>`"}

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


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """`Authorization: Bearer <token>` (core.authentication.BearerTokenAuthentication): the same API
    tokens as `Token <key>`, as an HTTP bearer scheme of its own."""

    target_class = "core.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "The API token, as `Bearer <key>`"}

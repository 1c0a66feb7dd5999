"""OpenAPI schema generation (drf-spectacular) for our API style.

API views nest their serializers (`PredictApi.OutputSerializer`, HackSoft style),
so many are called `OutputSerializer`; drf-spectacular names components by class
name and would merge them. Components are named from the qualified name instead:
`PredictApi.OutputSerializer.RowSerializer` -> `PredictOutputRow`.
"""

from drf_spectacular.openapi import AutoSchema


class NestedSerializerAutoSchema(AutoSchema):
    def get_serializer_name(self, serializer, direction):
        parts = type(serializer).__qualname__.split(".")
        return "".join(part.removesuffix("Serializer").removesuffix("Api") for part in parts)

"""Other servers' protocols, per model: MLflow's scoring protocol under `/serving/{name}/` and the Open
Inference Protocol (V2) under `/v2/`. Thin views: the body is read by `predictions.protocols`, scored and
logged by `predictions_make` (the service behind `POST /api/v1/models/{name}/predict/`: the same rules,
the same inference log, with the protocol as the source), and the answer or error shaped as the
protocol's clients expect.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import connection
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiRequest,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
)
from mlflow.version import VERSION as MLFLOW_VERSION
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from core.api_errors import DATABASE_UNAVAILABLE, api_exception_handler
from core.authentication import BearerTokenAuthentication, CachedTokenAuthentication
from models_registry.selectors import deployment_list
from models_registry.serving import ModelUnavailable

from . import routing, services
from .models import Source
from .protocols import ProtocolError
from .protocols import mlflow_scoring as mlflow_protocol
from .protocols import open_inference as v2
from .services.pinning import served_model_for_caller, versions_callable
from .validation import InputValidationError

JSON = "application/json"


class _AnyAccept(BaseContentNegotiation):
    """These clients send whatever Accept they like; the answer is the protocol's (JSON), never a 406."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class _ProtocolApi(APIView):
    # The body is read as bytes by the protocol's own rules (MLflow's content types, Triton's binary
    # tensors), not by DRF's parsers.
    parser_classes = []
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _AnyAccept
    authentication_classes = [CachedTokenAuthentication, BearerTokenAuthentication, SessionAuthentication]

    @staticmethod
    def error_response(status: int, message: str, errors: list | None, plain_text: bool) -> HttpResponse:
        raise NotImplementedError

    def get_exception_handler(self):
        return self._exception_response

    def _exception_response(self, exc, context):
        if isinstance(exc, ProtocolError):
            return self.error_response(exc.status, exc.message, None, exc.plain_text)
        if isinstance(exc, RequestDataTooBig):
            message = f"The body is over the limit of {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"
            return self.error_response(413, message, None, False)
        response = api_exception_handler(exc, context)
        if response is None:
            return None  # ours: a 500, logged by Django
        message = response.data["detail"]
        if isinstance(exc, InputValidationError):
            message = f"Invalid input. {exc.description}"
        answer = self.error_response(response.status_code, message, response.data.get("errors"), False)
        for header in ("WWW-Authenticate", "Retry-After"):
            if header in response:
                answer[header] = response[header]
        return answer

    @staticmethod
    def json_response(body, status: int = 200) -> HttpResponse:
        return HttpResponse(body if isinstance(body, bytes) else json.dumps(body), status=status, content_type=JSON)


# --------------------------------------------------------------------------- what the schema says they answer
# The bodies are made by `predictions.protocols` (MLflow's own exception, the V2 tensors), not by these
# serializers: they describe those bodies, and tests/test_schema_fuzz.py holds every answer to them.


class ProtocolFieldErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(allow_null=True, required=False, help_text="The row (from 0); null: the request")
    field = serializers.CharField(allow_null=True, help_text="The feature or field; null: the row as a whole")
    problem = serializers.CharField()


class MlflowErrorSerializer(serializers.Serializer):
    """`MlflowException.serialize_as_json()`, as `mlflow models serve` answers its errors."""

    error_code = serializers.ChoiceField(
        choices=[
            "BAD_REQUEST",
            "UNAUTHENTICATED",
            "PERMISSION_DENIED",
            "RESOURCE_DOES_NOT_EXIST",
            "REQUEST_LIMIT_EXCEEDED",
            "TEMPORARILY_UNAVAILABLE",
        ]
    )
    message = serializers.CharField()
    sqlstate = serializers.CharField(required=False, help_text="MLflow's, derived from error_code")
    error_class = serializers.CharField(required=False, help_text="MLflow's, derived from error_code")
    errors = ProtocolFieldErrorSerializer(many=True, required=False, help_text="mlapp's: each refused row and field")


class V2ErrorSerializer(serializers.Serializer):
    """The Open Inference Protocol's error body."""

    error = serializers.CharField()
    errors = ProtocolFieldErrorSerializer(many=True, required=False, help_text="mlapp's: each refused row and field")


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "number"}]})
class _LabelOrValueField(serializers.JSONField):
    """A classifier's label (text) or a regressor's value (a number)."""


_ERRORS = {
    400: "A body outside the protocol, or a value the model's rules refuse (`errors` names row and field)",
    401: "No credentials, or a token that does not exist",
    403: "Not allowed (a session without its CSRF token)",
    404: "The model serves nothing (the served models are named), or a version the caller may not name",
    405: "Another method",
    413: "The body is larger than MLAPP_MAX_BODY_MB",
    429: "Past the caller's request budget; Retry-After says when to come back",
    503: "The database or the model registry is unavailable; retry later",
}
# Every view authenticates a token sent (401 for a wrong one), answers other methods with 405, and needs
# the database for the token (503); a view with a budget adds 429, one that reads a body 413 (and 403:
# a session's POST needs its CSRF token), one with a model in its path 404.
_ANY_VIEW = (401, 405, 503)
_BUDGETED = (*_ANY_VIEW, 429)
_MODEL = (*_BUDGETED, 404)
_SCORING = (*_MODEL, 400, 403, 413)
_RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    int,
    OpenApiParameter.HEADER,
    response=[429, 503],
    description="Seconds to wait before retrying (on a throttled request, and when unavailable)",
)
_REQUEST_KEY = OpenApiParameter(
    routing.REQUEST_KEY_HEADER,
    {"type": "string", "maxLength": routing.MAX_REQUEST_KEY_LENGTH},
    OpenApiParameter.HEADER,
    description="The request's key for the model's A/B split (the same key, the same variant)",
)


def _error_responses(serializer, codes, extra=None) -> dict:
    return {code: OpenApiResponse(serializer, description=_ERRORS[code]) for code in sorted(codes)} | (extra or {})


def _mlflow_errors(codes, extra=None) -> dict:
    return _error_responses(MlflowErrorSerializer, codes, extra)


def _v2_errors(codes, extra=None) -> dict:
    return _error_responses(V2ErrorSerializer, codes, extra)


def _not_json(description: str) -> OpenApiResponse:
    """What MLflow's server answers as `application/json` though it is not a JSON document: stated, not typed."""
    return OpenApiResponse(description=description)


# --------------------------------------------------------------------------- MLflow's scoring protocol


class _MlflowApi(_ProtocolApi):
    @staticmethod
    def error_response(status, message, errors, plain_text):
        if plain_text:
            return HttpResponse(message, status=status, content_type="text/plain")
        return HttpResponse(mlflow_protocol.error_body(status, message, errors), status=status, content_type=JSON)


_MLFLOW_TAGS = ["MLflow scoring protocol"]


class MlflowInvocationsApi(_MlflowApi):
    throttle_scope = "predict"  # the scoring budget per user (core/throttles.py)

    class SplitSerializer(serializers.Serializer):
        class FrameSerializer(serializers.Serializer):
            columns = serializers.ListField(child=serializers.CharField(), help_text="The feature names")
            data = serializers.ListField(child=serializers.ListField(child=serializers.JSONField()))
            index = serializers.ListField(child=serializers.JSONField(), required=False)

        dataframe_split = FrameSerializer()
        params = serializers.DictField(required=False, help_text="Accepted and ignored: mlapp's models take none")

    class RecordsSerializer(serializers.Serializer):
        dataframe_records = serializers.ListField(child=serializers.DictField(), help_text="Rows by feature name")
        params = serializers.DictField(required=False)

    class InstancesSerializer(serializers.Serializer):
        instances = serializers.JSONField(
            help_text="Rows as objects, or columns as an object of lists (or one row as an object of values)"
        )
        params = serializers.DictField(required=False)

    class InputsSerializer(serializers.Serializer):
        inputs = serializers.JSONField(help_text="As `instances`")
        params = serializers.DictField(required=False)

    class OutputSerializer(serializers.Serializer):
        predictions = serializers.ListField(child=_LabelOrValueField(), help_text="A label or a value per row")

    @extend_schema(
        tags=_MLFLOW_TAGS,
        parameters=[
            _REQUEST_KEY,
            _RETRY_AFTER,
            OpenApiParameter(
                "X-Request-Id", str, OpenApiParameter.HEADER, response=[200], description="The inference log's"
            ),
            OpenApiParameter("X-Model-Version", int, OpenApiParameter.HEADER, response=[200]),
        ],
        request={
            JSON: PolymorphicProxySerializer(
                component_name="MlflowInvocationsInput",
                serializers=[SplitSerializer, RecordsSerializer, InstancesSerializer, InputsSerializer],
                resource_type_field_name=None,
            ),
            "text/csv": OpenApiRequest(
                OpenApiTypes.STR,
                examples=[OpenApiExample("csv", value="age,contract\n42,one-year\n", media_type="text/csv")],
            ),
        },
        responses={
            200: OutputSerializer,
            **_mlflow_errors(_SCORING),
            (415, "text/plain"): OpenApiResponse(
                OpenApiTypes.STR,
                description=(
                    "MLflow's sentence, as text/plain: a content type other than application/json or text/csv, "
                    "a charset other than UTF-8, or a parameter other than charset"
                ),
            ),
        },
        examples=[
            OpenApiExample(
                "dataframe_split",
                value={"dataframe_split": {"columns": ["age", "contract"], "data": [[42, "one-year"]]}},
                request_only=True,
                media_type=JSON,
            ),
            OpenApiExample(
                "dataframe_records",
                value={"dataframe_records": [{"age": 42, "contract": "one-year"}]},
                request_only=True,
                media_type=JSON,
            ),
            OpenApiExample("predictions", value={"predictions": ["yes"]}, response_only=True, status_codes=[200]),
            OpenApiExample(
                "refused",
                value={
                    "error_code": "BAD_REQUEST",
                    "message": "Invalid input. row 0, field 'age': wrong type: expected a number, got bool True",
                    "sqlstate": "KAM00",
                    "error_class": "INVALID_PARAMETER_VALUE",
                    "errors": [{"row": 0, "field": "age", "problem": "wrong type: expected a number, got bool True"}],
                },
                response_only=True,
                status_codes=[400],
            ),
        ],
        description=(
            "`mlflow models serve`'s `POST /invocations` for one model's production version: exactly one of "
            "`dataframe_split`, `dataframe_records`, `instances`, `inputs` (plus optional `params`), or a "
            "`text/csv` body (header row, then rows). Every row is checked by the model's rules as on "
            "`/api/v1/models/{name}/predict/` and logged with source `mlflow`; a refused row is a 400 naming row "
            "and field, and nothing is stored. Errors are MLflow's body; a content type MLflow refuses is its 415."
        ),
    )
    def post(self, request, model_name: str):
        content_type = request.META.get("CONTENT_TYPE")
        mlflow_protocol.content_type_check(content_type)  # a 415 before anything else, as MLflow does
        served = services.served_model_get(model_name)
        records = mlflow_protocol.invocation_records(body=request.body, content_type=content_type, specs=served.specs)
        result = services.predictions_make(
            model_name=model_name,
            records=records,
            source=Source.MLFLOW,
            served=served,
            actor=request.user,
            request_key=routing.request_key_read(header=request.META.get(routing.REQUEST_KEY_META), field=None),
        )
        response = self.json_response(mlflow_protocol.predictions_body([row.prediction for row in result.predictions]))
        response["X-Request-Id"] = result.request_id
        response["X-Model-Version"] = str(result.model_version)
        return response


class MlflowPingApi(_MlflowApi):
    """`GET ping` / `GET health`: 200 while the model has a version that can answer, else 404."""

    permission_classes = [AllowAny]
    throttle_classes = []  # probes

    @extend_schema(
        tags=_MLFLOW_TAGS,
        parameters=[_RETRY_AFTER],
        responses={
            200: _not_json("A newline, as `Content-Type: application/json` (what `mlflow models serve` sends)"),
            **_mlflow_errors((*_ANY_VIEW, 404)),
        },
    )
    def get(self, request, model_name: str):
        services.served_model_get(model_name)
        return HttpResponse("\n", content_type=JSON)


class MlflowVersionApi(_MlflowApi):
    """`GET version`: the MLflow version whose protocol this is (what `mlflow models serve` answers)."""

    permission_classes = [AllowAny]

    @extend_schema(
        tags=_MLFLOW_TAGS,
        parameters=[_RETRY_AFTER],
        responses={
            200: _not_json(
                "The MLflow version as bare text (`3.1.0`), as `Content-Type: application/json` (what "
                "`mlflow models serve` sends); for any model name"
            ),
            **_mlflow_errors(_BUDGETED),
        },
    )
    def get(self, request, model_name: str):
        return HttpResponse(MLFLOW_VERSION, content_type=JSON)


# --------------------------------------------------------------------------- Open Inference Protocol (V2)


class _V2Api(_ProtocolApi):
    @staticmethod
    def error_response(status, message, errors, plain_text):
        body = {"error": message, "errors": errors} if errors else {"error": message}
        return _ProtocolApi.json_response(body, status=status)


_V2_TAGS = ["Open Inference Protocol (V2)"]
_DATATYPES = ["BYTES", *v2.NUMERIC_TYPES]


class V2TensorMetadataSerializer(serializers.Serializer):
    name = serializers.CharField()
    datatype = serializers.ChoiceField(choices=["BYTES", "FP64", "INT64"])
    shape = serializers.ListField(child=serializers.IntegerField(), help_text="`[-1, 1]`: one value per row")


class V2ServerMetadataApi(_V2Api):
    permission_classes = [AllowAny]

    class OutputSerializer(serializers.Serializer):
        name = serializers.CharField()
        version = serializers.CharField()
        extensions = serializers.ListField(child=serializers.CharField())

    @extend_schema(tags=_V2_TAGS, parameters=[_RETRY_AFTER], responses={200: OutputSerializer, **_v2_errors(_BUDGETED)})
    def get(self, request):
        version = settings.SPECTACULAR_SETTINGS["VERSION"]
        return self.json_response({"name": "mlapp", "version": version, "extensions": ["binary_tensor_data"]})


class V2LiveApi(_V2Api):
    permission_classes = [AllowAny]
    throttle_classes = []  # probes

    class OutputSerializer(serializers.Serializer):
        live = serializers.BooleanField()

    @extend_schema(tags=_V2_TAGS, parameters=[_RETRY_AFTER], responses={200: OutputSerializer, **_v2_errors(_ANY_VIEW)})
    def get(self, request):
        return self.json_response({"live": True})


class V2ReadyApi(_V2Api):
    """Ready when the database answers and every served model has a version that can answer."""

    permission_classes = [AllowAny]
    throttle_classes = []  # probes

    class OutputSerializer(serializers.Serializer):
        ready = serializers.BooleanField()

    @extend_schema(
        tags=_V2_TAGS,
        parameters=[_RETRY_AFTER],
        responses={
            200: OutputSerializer,
            **_v2_errors(_ANY_VIEW),
            503: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="V2NotReady",
                    serializers=[OutputSerializer, V2ErrorSerializer],
                    resource_type_field_name=None,
                ),
                description='`{"ready": false}`: a served model has no version that can answer, or the database '
                "is away (when it is away before the check, the error body)",
            ),
        },
    )
    def get(self, request):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            for deployment in deployment_list():
                services.served_model_get(deployment.name)
        except (ModelUnavailable, *DATABASE_UNAVAILABLE):
            return self.json_response({"ready": False}, status=503)
        return self.json_response({"ready": True})


class V2ModelMetadataApi(_V2Api):
    class OutputSerializer(serializers.Serializer):
        name = serializers.CharField()
        versions = serializers.ListField(child=serializers.CharField(), help_text="The versions the caller may name")
        platform = serializers.CharField()
        inputs = V2TensorMetadataSerializer(many=True, help_text="One per feature, in the model's column order")
        outputs = V2TensorMetadataSerializer(many=True, help_text="`predict`, and `probability_<class>` per class")

    @extend_schema(tags=_V2_TAGS, parameters=[_RETRY_AFTER], responses={200: OutputSerializer, **_v2_errors(_MODEL)})
    def get(self, request, model_name: str, version: int | None = None):
        served = served_model_for_caller(model_name=model_name, version=version, user=request.user)
        versions = (
            [served.version] if version is not None else versions_callable(model_name=model_name, user=request.user)
        )
        return self.json_response(
            v2.model_metadata(name=served.name, versions=versions, specs=served.specs, classes=served.classes)
        )


class V2ModelReadyApi(_V2Api):
    class OutputSerializer(serializers.Serializer):
        name = serializers.CharField()
        version = serializers.CharField()
        ready = serializers.BooleanField()

    @extend_schema(tags=_V2_TAGS, parameters=[_RETRY_AFTER], responses={200: OutputSerializer, **_v2_errors(_MODEL)})
    def get(self, request, model_name: str, version: int | None = None):
        served = served_model_for_caller(model_name=model_name, version=version, user=request.user)
        return self.json_response({"name": served.name, "version": str(served.version), "ready": True})


class V2InferApi(_V2Api):
    throttle_scope = "predict"  # the scoring budget per user (core/throttles.py)

    class InputSerializer(serializers.Serializer):
        class TensorSerializer(serializers.Serializer):
            class ParametersSerializer(serializers.Serializer):
                binary_data_size = serializers.IntegerField(
                    min_value=0, required=False, help_text="The tensor's bytes after the JSON header (binary extension)"
                )

            name = serializers.CharField(help_text="A feature, or (one input only) any name for a table tensor")
            datatype = serializers.ChoiceField(choices=_DATATYPES)
            shape = serializers.ListField(
                child=serializers.IntegerField(min_value=0),
                min_length=1,
                help_text="`[rows]` or `[rows, 1]`; a table tensor `[rows, features]`",
            )
            data = serializers.ListField(child=serializers.JSONField(), required=False, help_text="Row-major")
            parameters = ParametersSerializer(required=False)

        class RequestedOutputSerializer(serializers.Serializer):
            name = serializers.CharField()

        id = serializers.CharField(
            max_length=v2.MAX_ID_CHARS, required=False, help_text="Echoed; the inference log's request id"
        )
        inputs = TensorSerializer(many=True, min_length=1)
        outputs = RequestedOutputSerializer(many=True, required=False, help_text="The outputs wanted (default: all)")
        parameters = serializers.DictField(required=False)

    class OutputSerializer(serializers.Serializer):
        class TensorSerializer(serializers.Serializer):
            name = serializers.CharField()
            datatype = serializers.ChoiceField(choices=["BYTES", "FP64"])
            shape = serializers.ListField(child=serializers.IntegerField(), help_text="`[rows, 1]`")
            data = serializers.ListField(child=_LabelOrValueField())

        model_name = serializers.CharField()
        model_version = serializers.CharField()
        id = serializers.CharField(required=False, help_text="The request's, when it had one")
        outputs = TensorSerializer(many=True)

    @extend_schema(
        tags=_V2_TAGS,
        parameters=[
            _REQUEST_KEY,
            _RETRY_AFTER,
            OpenApiParameter(
                "Inference-Header-Content-Length",
                {"type": "integer", "minimum": 0},
                OpenApiParameter.HEADER,
                description="Triton's binary tensor extension: the JSON header's length in bytes; the tensors' "
                "bytes follow it, in the order of the inputs with `binary_data_size`",
            ),
        ],
        request={
            JSON: InputSerializer,
            "application/octet-stream": OpenApiTypes.BINARY,
        },
        responses={200: OutputSerializer, **_v2_errors(_SCORING)},
        examples=[
            OpenApiExample(
                "one tensor per feature",
                value={
                    "id": "42",
                    "inputs": [
                        {"name": "age", "datatype": "FP64", "shape": [1, 1], "data": [42]},
                        {"name": "contract", "datatype": "BYTES", "shape": [1, 1], "data": ["one-year"]},
                    ],
                },
                request_only=True,
                media_type=JSON,
            ),
            OpenApiExample(
                "outputs",
                value={
                    "model_name": "churn-demo",
                    "model_version": "3",
                    "id": "42",
                    "outputs": [{"name": "predict", "datatype": "BYTES", "shape": [1, 1], "data": ["yes"]}],
                },
                response_only=True,
                status_codes=[200],
            ),
        ],
        description=(
            "Score rows sent as one tensor per feature (shape `[rows, 1]`) or one table tensor "
            "(`[rows, features]`, columns in the metadata's order), as JSON or with Triton's binary tensor "
            "extension (the JSON header, `Inference-Header-Content-Length` bytes long, then each binary input's "
            "bytes; what `tritonclient` sends). Outputs: `predict`, and `probability_<class>` per class for "
            "classifiers. The rows are checked and logged (source `v2`, request id = the request's `id`) as on "
            'the native predict API. Errors are `{"error": "..."}` (plus `errors` for refused values).'
        ),
    )
    def post(self, request, model_name: str, version: int | None = None):
        served = served_model_for_caller(model_name=model_name, version=version, user=request.user)
        infer = v2.infer_request_read(
            body=request.body,
            header_length=request.META.get("HTTP_INFERENCE_HEADER_CONTENT_LENGTH"),
            specs=served.specs,
            classes=served.classes,
        )
        result = services.predictions_make(
            model_name=model_name,
            records=infer.records,
            source=Source.V2,
            request_id=infer.request_id,
            served=served,
            actor=request.user,
            request_key=routing.request_key_read(header=request.META.get(routing.REQUEST_KEY_META), field=None),
            pinned=version is not None,
        )
        rows = result.predictions
        return self.json_response(
            v2.infer_response(
                model_name=result.model_name,
                model_version=result.model_version,
                request_id=infer.request_id,
                predictions=[row.prediction for row in rows],
                probabilities=[row.probabilities for row in rows] if served.classes else None,
                classes=served.classes,
                outputs=infer.outputs,
            )
        )


def protocol_error_response(path: str, status: int, message: str) -> HttpResponse | None:
    """A request under /serving/ or /v2 that no view answered (an address no URL matches, a body over the
    limit refused before it is read) answered in its protocol's error shape; None for any other path."""
    if path.startswith("/serving/"):
        return _MlflowApi.error_response(status, message, None, False)
    if path == "/v2" or path.startswith("/v2/"):
        return _V2Api.error_response(status, message, None, False)
    return None

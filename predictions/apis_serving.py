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
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from mlflow.version import VERSION as MLFLOW_VERSION
from rest_framework.authentication import SessionAuthentication
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from core.api_errors import DATABASE_UNAVAILABLE, api_exception_handler
from core.authentication import BearerTokenAuthentication, CachedTokenAuthentication
from models_registry.selectors import deployment_list
from models_registry.serving import ModelUnavailable

from . import services
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

    def error_response(self, status: int, message: str, errors: list | None, plain_text: bool) -> HttpResponse:
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


# --------------------------------------------------------------------------- MLflow's scoring protocol


class _MlflowApi(_ProtocolApi):
    def error_response(self, status, message, errors, plain_text):
        if plain_text:
            return HttpResponse(message, status=status, content_type="text/plain")
        return HttpResponse(mlflow_protocol.error_body(status, message, errors), status=status, content_type=JSON)


_MLFLOW_ERROR = OpenApiResponse(OpenApiTypes.OBJECT, description='MLflow\'s error body: {"error_code", "message"}')


class MlflowInvocationsApi(_MlflowApi):
    @extend_schema(
        operation_id="mlflow_invocations",
        tags=["MLflow scoring protocol"],
        request={JSON: OpenApiTypes.OBJECT, "text/csv": OpenApiTypes.STR},
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description='{"predictions": [label or value, ...]}'),
            400: _MLFLOW_ERROR,
            401: _MLFLOW_ERROR,
            403: _MLFLOW_ERROR,
            404: _MLFLOW_ERROR,
            413: _MLFLOW_ERROR,
            415: OpenApiResponse(
                OpenApiTypes.STR, description="text/plain: another content type, charset or parameter"
            ),
            503: _MLFLOW_ERROR,
        },
        examples=[
            OpenApiExample(
                "dataframe_split",
                value={"dataframe_split": {"columns": ["age", "contract"], "data": [[42, "one-year"]]}},
            ),
            OpenApiExample("dataframe_records", value={"dataframe_records": [{"age": 42, "contract": "one-year"}]}),
        ],
        description=(
            "`mlflow models serve`'s `POST /invocations` for one model's production version: exactly one of "
            "`dataframe_split`, `dataframe_records`, `instances`, `inputs` (plus optional `params`), or a "
            "`text/csv` body. Every row is checked by the model's rules as on `/api/v1/models/{name}/predict/` "
            "and logged with source `mlflow`; a refused row is a 400 naming row and field, and nothing is stored."
        ),
    )
    def post(self, request, model_name: str):
        content_type = request.META.get("CONTENT_TYPE")
        mlflow_protocol.content_type_check(content_type)  # a 415 before anything else, as MLflow does
        served = services.served_model_get(model_name)
        records = mlflow_protocol.invocation_records(body=request.body, content_type=content_type, specs=served.specs)
        result = services.predictions_make(model_name=model_name, records=records, source=Source.MLFLOW, served=served)
        response = self.json_response(mlflow_protocol.predictions_body([row.prediction for row in result.predictions]))
        response["X-Request-Id"] = result.request_id
        response["X-Model-Version"] = str(result.model_version)
        return response


class MlflowPingApi(_MlflowApi):
    """`GET ping` / `GET health`: 200 while the model has a version that can answer, else 404."""

    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="mlflow_ping",
        tags=["MLflow scoring protocol"],
        responses={200: OpenApiTypes.STR, 404: _MLFLOW_ERROR, 503: _MLFLOW_ERROR},
    )
    def get(self, request, model_name: str):
        services.served_model_get(model_name)
        return HttpResponse("\n", content_type=JSON)


class MlflowVersionApi(_MlflowApi):
    """`GET version`: the MLflow version whose protocol this is (what `mlflow models serve` answers)."""

    permission_classes = [AllowAny]

    @extend_schema(operation_id="mlflow_version", tags=["MLflow scoring protocol"], responses={200: OpenApiTypes.STR})
    def get(self, request, model_name: str):
        return HttpResponse(MLFLOW_VERSION, content_type=JSON)


# --------------------------------------------------------------------------- Open Inference Protocol (V2)


class _V2Api(_ProtocolApi):
    def error_response(self, status, message, errors, plain_text):
        body = {"error": message, "errors": errors} if errors else {"error": message}
        return self.json_response(body, status=status)


_V2_ERROR = OpenApiResponse(OpenApiTypes.OBJECT, description='{"error": "..."}')
_V2_TAGS = ["Open Inference Protocol (V2)"]


class V2ServerMetadataApi(_V2Api):
    permission_classes = [AllowAny]

    @extend_schema(operation_id="v2_server_metadata", tags=_V2_TAGS, responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        version = settings.SPECTACULAR_SETTINGS["VERSION"]
        return self.json_response({"name": "mlapp", "version": version, "extensions": ["binary_tensor_data"]})


class V2LiveApi(_V2Api):
    permission_classes = [AllowAny]

    @extend_schema(operation_id="v2_health_live", tags=_V2_TAGS, responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return self.json_response({"live": True})


class V2ReadyApi(_V2Api):
    """Ready when the database answers and every served model has a version that can answer."""

    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="v2_health_ready", tags=_V2_TAGS, responses={200: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT}
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
    @extend_schema(
        operation_id="v2_model_metadata",
        tags=_V2_TAGS,
        responses={200: OpenApiTypes.OBJECT, 401: _V2_ERROR, 403: _V2_ERROR, 404: _V2_ERROR, 503: _V2_ERROR},
    )
    def get(self, request, model_name: str, version: int | None = None):
        served = served_model_for_caller(model_name=model_name, version=version, user=request.user)
        versions = (
            [served.version] if version is not None else versions_callable(model_name=model_name, user=request.user)
        )
        return self.json_response(
            v2.model_metadata(name=served.name, versions=versions, specs=served.specs, classes=served.classes)
        )


class V2ModelReadyApi(_V2Api):
    @extend_schema(
        operation_id="v2_model_ready",
        tags=_V2_TAGS,
        responses={200: OpenApiTypes.OBJECT, 401: _V2_ERROR, 403: _V2_ERROR, 404: _V2_ERROR, 503: _V2_ERROR},
    )
    def get(self, request, model_name: str, version: int | None = None):
        served = served_model_for_caller(model_name=model_name, version=version, user=request.user)
        return self.json_response({"name": served.name, "version": str(served.version), "ready": True})


class V2InferApi(_V2Api):
    @extend_schema(
        operation_id="v2_model_infer",
        tags=_V2_TAGS,
        request={JSON: OpenApiTypes.OBJECT, "application/octet-stream": OpenApiTypes.BINARY},
        responses={
            200: OpenApiTypes.OBJECT,
            400: _V2_ERROR,
            401: _V2_ERROR,
            403: _V2_ERROR,
            404: _V2_ERROR,
            413: _V2_ERROR,
            503: _V2_ERROR,
        },
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
            )
        ],
        description=(
            "Score rows sent as one tensor per feature (shape `[rows, 1]`) or one table tensor "
            "(`[rows, features]`, columns in the metadata's order), as JSON or with Triton's binary tensor "
            "extension. Outputs: `predict`, and `probability_<class>` per class for classifiers. The rows are "
            "checked and logged (source `v2`, request id = the request's `id`) as on the native predict API."
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
            model_name=model_name, records=infer.records, source=Source.V2, request_id=infer.request_id, served=served
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

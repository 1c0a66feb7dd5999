"""REST API of the predictions app (DRF): one view per operation."""

from __future__ import annotations

from django.db import connection
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_parsers import JSONParser
from core.task_queue import TaskQueueUnavailable, broker_check
from models_registry.selectors import deployment_list
from models_registry.serving import ModelUnavailable, loader

from . import routing, selectors, services
from .models import Prediction, Source, Variant
from .validation import FieldError, InputValidationError


class LenientJSONParser(JSONParser):
    """Lets NaN/Infinity through parsing so validation can name the row and field."""

    strict = False


class PredictApi(APIView):
    parser_classes = [LenientJSONParser]
    throttle_scope = "predict"  # its own budget per user (core/throttles.py)

    class OutputSerializer(serializers.Serializer):
        class RowSerializer(serializers.Serializer):
            id = serializers.IntegerField()
            prediction = serializers.JSONField()
            probabilities = serializers.DictField(child=serializers.FloatField(), allow_null=True)

        class WarningSerializer(serializers.Serializer):
            row = serializers.IntegerField(allow_null=True, help_text="null: about the request as a whole")
            field = serializers.CharField(allow_null=True, help_text="null: the row as a whole (a duplicate)")
            problem = serializers.CharField()

        model_name = serializers.CharField()
        model_version = serializers.IntegerField()
        run_id = serializers.CharField()
        request_id = serializers.CharField()
        variant = serializers.ChoiceField(
            choices=Variant.choices, help_text="production, or challenger when the model's A/B split routed the request"
        )
        predictions = RowSerializer(many=True)
        warnings = WarningSerializer(
            many=True, help_text="Accepted input worth knowing about, e.g. a category unseen in training"
        )

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={200: OutputSerializer, 400: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT},
        examples=[
            OpenApiExample("many rows", value={"rows": [{"age": 42, "contract": "one-year"}]}),
            OpenApiExample("one row", value={"features": {"age": 42, "contract": "one-year"}}),
        ],
        description=(
            'Score rows with the model\'s production version. Send `{"rows": [{...}, ...]}` or one row as '
            '`{"features": {...}}`. Every row must carry every feature of the model\'s signature. '
            "A 400 lists each offending row and field; nothing is stored then; 404 if the model has no "
            "production version. Under an A/B traffic policy a share of requests is answered by the challenger "
            "(`variant` says which); send a request key (`X-Request-Key` header or `request_key` field) for the "
            "same key to get the same variant."
        ),
    )
    def post(self, request, model_name: str):
        body = request.data
        if not isinstance(body, dict) or ("rows" in body) == ("features" in body):
            raise InputValidationError(
                [FieldError(None, None, 'send an object with "rows" (a list) or "features" (one row)')]
            )
        records = body["rows"] if "rows" in body else [body["features"]]
        result = services.predictions_make(
            model_name=model_name,
            records=records,
            source=Source.API,
            actor=request.user,
            request_key=routing.request_key_read(
                header=request.META.get(routing.REQUEST_KEY_META), field=body.get("request_key")
            ),
        )
        return Response(
            {
                "model_name": result.model_name,
                "model_version": result.model_version,
                "run_id": result.run_id,
                "request_id": result.request_id,
                "variant": result.variant,
                "predictions": [
                    {"id": row.id, "prediction": row.prediction, "probabilities": row.probabilities}
                    for row in result.predictions
                ],
                "warnings": [warning.as_dict() for warning in result.warnings],
            }
        )


class PredictMovedApi(APIView):
    """`POST /api/v1/predict/` scored with "the" model; every model now has its own URL."""

    @extend_schema(exclude=True)
    def post(self, request):
        served = [d.name for d in deployment_list()]
        return Response(
            {
                "detail": "Name the model in the URL: POST /api/v1/models/{name}/predict/ "
                f"(served models: {', '.join(served) or 'none yet'})",
                "models": served,
            },
            status=status.HTTP_410_GONE,
        )


class PredictionOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Prediction
        fields = [
            "id",
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
            "variant",
            "shadow_of",
            "row_number",
            "actual_label",
            "actual_value",
            "feedback_at",
        ]


class NewestFirst(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class PredictionListApi(APIView):
    pagination_class = NewestFirst  # read by the schema generator: the answer is a page, not an array

    class FilterSerializer(serializers.Serializer):
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)
        source = serializers.ChoiceField(choices=Source.choices, required=False)
        model_name = serializers.CharField(required=False)
        model_version = serializers.IntegerField(required=False, min_value=1)
        variant = serializers.ChoiceField(
            choices=Variant.choices, required=False, help_text="Left out: production and A/B rows (no shadow rows)"
        )

    @extend_schema(parameters=[FilterSerializer], responses=PredictionOutputSerializer(many=True))
    def get(self, request, model_name: str | None = None):
        """Past predictions, newest first; under /models/{name}/ only that model's."""
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        criteria = dict(filters.validated_data, visible_to=request.user)
        if model_name is not None:
            criteria["model_name"] = model_name
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.prediction_list(**criteria), request, view=self)
        return paginator.get_paginated_response(PredictionOutputSerializer(page, many=True).data)


class PredictionFeedbackApi(APIView):
    parser_classes = [LenientJSONParser]

    class InputSerializer(serializers.Serializer):
        actual = serializers.JSONField(help_text="The true label (classification) or value (regression)")

    @extend_schema(request=InputSerializer, responses=PredictionOutputSerializer)
    def post(self, request, prediction_id):
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        prediction = services.prediction_feedback_record(
            prediction_id=prediction_id, actual=payload.validated_data["actual"], actor=request.user
        )
        return Response(PredictionOutputSerializer(prediction).data)


class ScheduledRunListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.CharField()
        model_name = serializers.CharField()
        model_version = serializers.IntegerField(allow_null=True)
        files_scored = serializers.IntegerField()
        rows_scored = serializers.IntegerField()
        started_at = serializers.DateTimeField()
        finished_at = serializers.DateTimeField(allow_null=True)
        duration_seconds = serializers.FloatField(allow_null=True)
        error = serializers.CharField()

    class Pagination(CursorPagination):
        ordering = ("-started_at", "-id")
        page_size = 50

    pagination_class = Pagination  # read by the schema generator: the answer is a page, not an array

    class FilterSerializer(serializers.Serializer):
        model_name = serializers.CharField(required=False, max_length=255)

    @extend_schema(parameters=[FilterSerializer], responses=OutputSerializer(many=True))
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = self.Pagination()
        page = paginator.paginate_queryset(selectors.scheduled_run_list(**filters.validated_data), request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


class HealthApi(APIView):
    """Database, served models, registry and broker reachability, in one report (kept for existing clients;
    probes use /health/live and /health/ready, see mlapp/health.py)."""

    permission_classes = [AllowAny]
    throttle_classes = []  # load balancers and probes poll it from one address

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        body = {"status": "ok", "database": "ok"}
        code = status.HTTP_200_OK
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception as exc:  # any database failure makes the process unready
            body.update(status="unavailable", database=f"{type(exc).__name__}: {exc}"[:300])
            code = status.HTTP_503_SERVICE_UNAVAILABLE
        served, errors = [], {}
        deployments = deployment_list() if code == status.HTTP_200_OK else []
        for deployment in deployments:
            try:
                model = services.served_model_get(deployment.name)
                served.append(f"{model.name} v{model.version}")
            except ModelUnavailable as exc:
                errors[deployment.name] = str(exc)[:300]
        if errors:
            body["status"] = "unavailable"
            body["model_error"] = "; ".join(f"{name}: {error}" for name, error in errors.items())
            code = status.HTTP_503_SERVICE_UNAVAILABLE
        body["model"] = {**loader().health(), "served": served}
        try:
            broker_check()
            body["broker"] = "ok"
        except TaskQueueUnavailable as exc:
            body["broker"] = str(exc)[:300]
        if code == status.HTTP_200_OK and (not body["model"]["registry_ok"] or body["broker"] != "ok"):
            body["status"] = "degraded"  # serving the loaded model; the registry or the task queue is unreachable
        if not request.user.is_staff:
            # Error texts can name hosts and databases: staff only.
            for key in ("database", "model_error", "broker"):
                if key in body and body[key] != "ok":
                    body[key] = "error"
            body["model"].pop("registry_error", None)
            for refused in body["model"]["refused"]:
                refused.pop("reason", None)
        return Response(body, status=code)

"""REST: ingested files with counts and issues, ingestion runs, alerts (list, acknowledge)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import NotFoundError
from core.permissions import IsStaff

from ..models import Alert, IngestedFile
from ..params import model_name_param
from ..selectors import ingestion as selectors
from ..services.alerts import alert_acknowledge


class Pagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


class IssueOutputSerializer(serializers.Serializer):
    rule = serializers.CharField()
    column = serializers.CharField()
    severity = serializers.CharField()
    count = serializers.IntegerField()
    sample_values = serializers.ListField(child=serializers.JSONField())
    message = serializers.CharField()


class IngestedFileOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    run_id = serializers.IntegerField(allow_null=True)
    original_name = serializers.CharField()
    sha256 = serializers.CharField()
    size_bytes = serializers.IntegerField()
    status = serializers.CharField()
    model_name = serializers.CharField()
    model_version = serializers.IntegerField(allow_null=True)
    rows_in = serializers.IntegerField()
    rows_good = serializers.IntegerField()
    rows_bad = serializers.IntegerField()
    bad_share = serializers.FloatField()
    reason = serializers.CharField()
    good_path = serializers.CharField()
    bad_path = serializers.CharField()
    archived_path = serializers.CharField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    issues = IssueOutputSerializer(many=True, source="issues.all")


def _status_param(request) -> str | None:
    value = request.query_params.get("status") or None
    if value is not None and value not in IngestedFile.Status.values:
        raise serializers.ValidationError(
            {"status": f"unknown status {value!r}; choose one of {', '.join(IngestedFile.Status.values)}"}
        )
    return value


def _model_param(request) -> str | None:
    return model_name_param(request.query_params.get("model_name"), default=None)


MODEL_PARAMETER = OpenApiParameter("model_name", str, description="only this model's (default: every model)")


class IngestedFileListApi(APIView):
    pagination_class = Pagination  # read by the schema generator: the answer is a page, not an array

    @extend_schema(
        parameters=[
            MODEL_PARAMETER,
            OpenApiParameter("status", enum=IngestedFile.Status.values),
            OpenApiParameter("run", int),
            OpenApiParameter("limit", int),
            OpenApiParameter("offset", int),
        ],
        responses=IngestedFileOutputSerializer(many=True),
    )
    def get(self, request):
        run = request.query_params.get("run")
        if run is not None and (not run.isdigit() or int(run) >= 2**63):
            raise serializers.ValidationError({"run": "must be a run id (a positive integer)"})
        files = selectors.ingested_file_list(
            model_name=_model_param(request), status=_status_param(request), run_id=int(run) if run else None
        )
        paginator = Pagination()
        page = paginator.paginate_queryset(files.prefetch_related("issues"), request, view=self)
        return paginator.get_paginated_response(IngestedFileOutputSerializer(page, many=True).data)


class IngestedFileDetailApi(APIView):
    class OutputSerializer(IngestedFileOutputSerializer):
        quarantined_rows = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        parameters=[OpenApiParameter("rows", int, description="quarantined rows to include (default 20, max 500)")],
        responses=OutputSerializer,
    )
    def get(self, request, pk):
        ingested_file = selectors.ingested_file_get(pk=pk)
        if ingested_file is None:
            raise NotFoundError(f"No ingested file #{pk}")
        try:
            limit = min(max(int(request.query_params.get("rows", 20)), 0), 500)
        except ValueError:
            raise serializers.ValidationError({"rows": "must be an integer"})
        ingested_file.quarantined_rows = (
            selectors.quarantine_rows_as_dicts(ingested_file=ingested_file, limit=limit)
            if ingested_file.status == IngestedFile.Status.DONE
            else []
        )
        return Response(self.OutputSerializer(ingested_file).data)


class IngestionRunListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        model_name = serializers.CharField()
        started_at = serializers.DateTimeField()
        finished_at = serializers.DateTimeField(allow_null=True)
        files_seen = serializers.IntegerField()
        files_processed = serializers.IntegerField()
        rows_in = serializers.IntegerField(allow_null=True)
        rows_good = serializers.IntegerField(allow_null=True)
        rows_bad = serializers.IntegerField(allow_null=True)
        error = serializers.CharField()

    @extend_schema(parameters=[MODEL_PARAMETER, OpenApiParameter("limit", int)], responses=OutputSerializer(many=True))
    def get(self, request):
        try:
            limit = min(max(int(request.query_params.get("limit", 20)), 1), 200)
        except ValueError:
            raise serializers.ValidationError({"limit": "must be an integer"})
        runs = selectors.ingestion_run_list(model_name=_model_param(request), limit=limit)
        return Response(self.OutputSerializer(runs, many=True).data)


class AlertOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    severity = serializers.CharField()
    model_name = serializers.CharField(help_text='the model it is about; "" for the platform itself')
    title = serializers.CharField()
    message = serializers.CharField()
    ingested_file_id = serializers.IntegerField(allow_null=True)
    drift_report_id = serializers.IntegerField(allow_null=True)
    email_sent_at = serializers.DateTimeField(allow_null=True)
    email_error = serializers.CharField()
    webhook_sent_at = serializers.DateTimeField(allow_null=True)
    webhook_error = serializers.CharField()
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", default=None)
    created_at = serializers.DateTimeField()


class AlertListApi(APIView):
    pagination_class = Pagination  # read by the schema generator: the answer is a page, not an array

    @extend_schema(
        parameters=[
            MODEL_PARAMETER,
            OpenApiParameter("state", enum=list(selectors.ALERT_STATES), description="default: open"),
            OpenApiParameter("kind", enum=Alert.Kind.values),
            OpenApiParameter("limit", int),
            OpenApiParameter("offset", int),
        ],
        responses=AlertOutputSerializer(many=True),
    )
    def get(self, request):
        state = request.query_params.get("state", "open")
        if state not in selectors.ALERT_STATES:
            raise serializers.ValidationError(
                {"state": f"unknown state {state!r}; choose one of {', '.join(selectors.ALERT_STATES)}"}
            )
        kind = request.query_params.get("kind") or None
        if kind is not None and kind not in Alert.Kind.values:
            raise serializers.ValidationError(
                {"kind": f"unknown kind {kind!r}; choose one of {', '.join(Alert.Kind.values)}"}
            )
        paginator = Pagination()
        alerts = selectors.alert_list(state=state, kind=kind, model_name=_model_param(request))
        page = paginator.paginate_queryset(alerts, request, view=self)
        return paginator.get_paginated_response(AlertOutputSerializer(page, many=True).data)


class AlertAcknowledgeApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(request=None, responses=AlertOutputSerializer)
    def post(self, request, pk):
        if selectors.alert_get(pk=pk) is None:
            raise NotFoundError(f"No alert #{pk}")
        return Response(AlertOutputSerializer(alert_acknowledge(alert_id=pk, user=request.user)).data)

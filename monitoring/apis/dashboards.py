"""REST, per model (under /api/v1/models/{name}/): drift reports (list, detail, run a check),
the latest verdict, and the dashboards' series.

Series are lists of points with an ISO ``time`` field, ready for Grafana's JSON
or Infinity data sources.
"""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from models_registry.permissions import IsStaff
from predictions.models import Source

from ..selectors import dashboards as selectors
from ..services import drift


class FeatureDriftOutputSerializer(serializers.Serializer):
    feature = serializers.CharField()
    kind = serializers.CharField()
    test = serializers.CharField()
    statistic = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    p_value_adjusted = serializers.FloatField(allow_null=True)
    effect_name = serializers.CharField()
    effect_size = serializers.FloatField(allow_null=True)
    psi = serializers.FloatField(allow_null=True)
    method_used = serializers.CharField()
    threshold = serializers.FloatField(allow_null=True)
    drifted = serializers.BooleanField()
    verdict = serializers.CharField()
    n_window = serializers.IntegerField()
    n_reference = serializers.IntegerField()
    missing_share_window = serializers.FloatField(allow_null=True)


class FeatureDriftDetailOutputSerializer(FeatureDriftOutputSerializer):
    distribution = serializers.JSONField()


class DriftReportOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    model_name = serializers.CharField()
    model_version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    window_start = serializers.DateTimeField(allow_null=True)
    window_end = serializers.DateTimeField(allow_null=True)
    n_rows = serializers.IntegerField()
    dataset_drift = serializers.BooleanField()
    drifted_share = serializers.FloatField()
    n_drifted = serializers.IntegerField()
    n_features = serializers.IntegerField()
    prediction_drift = serializers.BooleanField()


class DriftReportDetailOutputSerializer(DriftReportOutputSerializer):
    config = serializers.JSONField()
    features = serializers.SerializerMethodField()

    def get_features(self, report) -> list[dict]:
        rows = selectors.drift_report_features(report=report, with_distribution=True)
        return FeatureDriftDetailOutputSerializer(rows, many=True).data


def _limit(request, *, default: int, maximum: int) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise serializers.ValidationError({"limit": f"must be an integer from 1 to {maximum}"})
    return int(raw)


class DriftReportListApi(APIView):
    class InputSerializer(serializers.Serializer):
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)
        last_n = serializers.IntegerField(required=False, min_value=1, max_value=drift.MAX_WINDOW_ROWS)
        source = serializers.ChoiceField(choices=Source.values, required=False)

    def get_permissions(self):
        return [IsStaff()] if self.request.method == "POST" else super().get_permissions()

    @extend_schema(
        parameters=[OpenApiParameter("limit", int)],
        responses=DriftReportOutputSerializer(many=True),
    )
    def get(self, request, model_name: str):
        reports = selectors.drift_report_list(
            model_name=model_name,
            limit=_limit(request, default=50, maximum=1000),
        )
        return Response(DriftReportOutputSerializer(reports, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: DriftReportDetailOutputSerializer})
    def post(self, request, model_name: str):
        """Run a drift check of the model now (staff) and store its report."""
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            report = drift.drift_report_create(model_name=model_name, **payload.validated_data)
        except drift.DriftCheckError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(DriftReportDetailOutputSerializer(report).data, status=status.HTTP_201_CREATED)


class DriftReportDetailApi(APIView):
    @extend_schema(responses=DriftReportDetailOutputSerializer)
    def get(self, request, model_name: str, pk: int):
        report = selectors.drift_report_get(report_id=pk, model_name=model_name)
        if report is None:
            return Response({"detail": f"{model_name} has no drift report #{pk}."}, status=status.HTTP_404_NOT_FOUND)
        return Response(DriftReportDetailOutputSerializer(report).data)


class DriftVerdictApi(APIView):
    class OutputSerializer(serializers.Serializer):
        report_id = serializers.IntegerField()
        model_name = serializers.CharField()
        model_version = serializers.IntegerField()
        dataset_drift = serializers.BooleanField()
        drifted_share = serializers.FloatField()
        drifted_features = serializers.ListField(child=serializers.CharField())
        prediction_drift = serializers.BooleanField()
        n_rows = serializers.IntegerField()
        created_at = serializers.DateTimeField()

    @extend_schema(responses=OutputSerializer)
    def get(self, request, model_name: str):
        verdict = drift.drift_latest_verdict(model_name)
        if verdict is None:
            return Response({"detail": f"No drift report for {model_name} yet."}, status=status.HTTP_404_NOT_FOUND)
        return Response(self.OutputSerializer(verdict).data)


class DriftHistoryApi(APIView):
    class InputSerializer(serializers.Serializer):
        feature = serializers.CharField(max_length=255)
        limit = serializers.IntegerField(required=False, min_value=1, max_value=5000, default=500)

    class OutputSerializer(serializers.Serializer):
        time = serializers.DateTimeField(source="created_at")
        report_id = serializers.IntegerField()
        model_version = serializers.IntegerField()
        statistic = serializers.FloatField(allow_null=True)
        p_value = serializers.FloatField(allow_null=True)
        effect_name = serializers.CharField()
        effect_size = serializers.FloatField(allow_null=True)
        psi = serializers.FloatField(allow_null=True)
        method_used = serializers.CharField()
        threshold = serializers.FloatField(allow_null=True)
        effect_threshold = serializers.FloatField(allow_null=True)
        p_threshold = serializers.FloatField(allow_null=True)
        drifted = serializers.BooleanField()
        verdict = serializers.CharField()

    @extend_schema(parameters=[InputSerializer], responses=OutputSerializer(many=True))
    def get(self, request, model_name: str):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        history = selectors.drift_history(
            model_name=model_name,
            feature=params.validated_data["feature"],
            limit=params.validated_data["limit"],
        )
        return Response(self.OutputSerializer(history, many=True).data)


class _SeriesInput(serializers.Serializer):
    granularity = serializers.ChoiceField(choices=selectors.GRANULARITIES, default=selectors.HOUR)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    model_version = serializers.IntegerField(required=False, min_value=1)


class PredictionSeriesApi(APIView):
    class InputSerializer(_SeriesInput):
        source = serializers.ChoiceField(choices=Source.values, required=False)

    class OutputSerializer(serializers.Serializer):
        class PointSerializer(serializers.Serializer):
            time = serializers.DateTimeField()
            model_version = serializers.IntegerField()
            n = serializers.IntegerField()
            labels = serializers.DictField(child=serializers.IntegerField(), allow_null=True)
            value_mean = serializers.FloatField(allow_null=True)
            value_std = serializers.FloatField(allow_null=True)
            value_min = serializers.FloatField(allow_null=True)
            value_max = serializers.FloatField(allow_null=True)

        model_name = serializers.CharField()
        granularity = serializers.CharField()
        since = serializers.DateTimeField()
        until = serializers.DateTimeField()
        rollups_position = serializers.DateTimeField(allow_null=True)
        points = PointSerializer(many=True)

    @extend_schema(parameters=[InputSerializer], responses=OutputSerializer)
    def get(self, request, model_name: str):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        try:
            series = selectors.prediction_series(model_name=model_name, **params.validated_data)
        except selectors.SeriesError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(self.OutputSerializer(series).data)


class PerformanceSeriesApi(APIView):
    class InputSerializer(_SeriesInput):
        granularity = serializers.ChoiceField(choices=(selectors.HOUR, selectors.DAY), default=selectors.DAY)

    class OutputSerializer(serializers.Serializer):
        class PointSerializer(serializers.Serializer):
            time = serializers.DateTimeField()
            model_version = serializers.IntegerField()
            n_feedback = serializers.IntegerField()
            accuracy = serializers.FloatField(required=False)
            f1_macro = serializers.FloatField(required=False, allow_null=True)
            mae = serializers.FloatField(required=False)
            rmse = serializers.FloatField(required=False)

        model_name = serializers.CharField()
        task = serializers.CharField(allow_null=True)
        granularity = serializers.CharField()
        since = serializers.DateTimeField()
        until = serializers.DateTimeField()
        rollups_position = serializers.DateTimeField(allow_null=True)
        points = PointSerializer(many=True)

    @extend_schema(parameters=[InputSerializer], responses=OutputSerializer)
    def get(self, request, model_name: str):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        try:
            series = selectors.performance_series(model_name=model_name, **params.validated_data)
        except selectors.SeriesError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(self.OutputSerializer(series).data)


class DataQualitySeriesApi(APIView):
    class InputSerializer(serializers.Serializer):
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)

    class OutputSerializer(serializers.Serializer):
        class FileSerializer(serializers.Serializer):
            time = serializers.DateTimeField()
            id = serializers.IntegerField()
            original_name = serializers.CharField()
            status = serializers.CharField()
            rows_in = serializers.IntegerField()
            rows_good = serializers.IntegerField()
            rows_bad = serializers.IntegerField()
            bad_share = serializers.FloatField(allow_null=True)

        class IssueSerializer(serializers.Serializer):
            time = serializers.DateTimeField()
            rule = serializers.CharField()
            rows = serializers.IntegerField()
            files = serializers.IntegerField()

        since = serializers.DateTimeField()
        until = serializers.DateTimeField()
        files = FileSerializer(many=True)
        issues_by_rule = IssueSerializer(many=True)

    @extend_schema(parameters=[InputSerializer], responses=OutputSerializer)
    def get(self, request, model_name: str):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        try:
            series = selectors.data_quality_series(model_name=model_name, **params.validated_data)
        except selectors.SeriesError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(self.OutputSerializer(series).data)

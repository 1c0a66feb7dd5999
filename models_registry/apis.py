from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import IsStaff

from . import selectors, services


class ModelListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        name = serializers.CharField()
        n_versions = serializers.IntegerField()
        latest_version = serializers.IntegerField(allow_null=True)
        aliases = serializers.DictField(child=serializers.IntegerField())

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        return Response(self.OutputSerializer(selectors.registered_model_list(), many=True).data)


class ModelVersionListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        version = serializers.IntegerField()
        run_id = serializers.CharField()
        aliases = serializers.ListField(child=serializers.CharField())
        run_url = serializers.CharField()
        task = serializers.CharField(source="record.task", default=None)
        metrics = serializers.DictField(source="record.metrics", default=None)
        training_data_sha256 = serializers.CharField(source="record.training_data_sha256", default=None)
        created_by = serializers.CharField(source="record.created_by_label", default=None)
        created_at = serializers.DateTimeField(source="record.created_at", default=None)

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request, name):
        return Response(self.OutputSerializer(selectors.model_version_rows(name), many=True).data)


class AliasChangeOutputSerializer(serializers.Serializer):
    model_name = serializers.CharField()
    alias = serializers.CharField()
    action = serializers.CharField()
    from_version = serializers.IntegerField(allow_null=True)
    to_version = serializers.IntegerField(allow_null=True)
    actor_label = serializers.CharField()
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class ReasonInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=1000)


class ModelVersionPromoteApi(APIView):
    permission_classes = [IsStaff]

    class InputSerializer(ReasonInputSerializer):
        confirm_schema_change = serializers.BooleanField(
            default=False,
            help_text="Required when the version's task, target or features differ from the production version's",
        )

    @extend_schema(
        request=InputSerializer,
        responses={201: AliasChangeOutputSerializer, 409: OpenApiTypes.OBJECT},
        description="409: the version is not a drop-in replacement for production (`errors` list each schema "
        'change, field "schema"); send `"confirm_schema_change": true` to promote it anyway.',
    )
    def post(self, request, name, version):
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        change = services.model_version_promote(
            name=name,
            version=version,
            actor=request.user,
            reason=payload.validated_data["reason"],
            confirm_schema_change=payload.validated_data["confirm_schema_change"],
        )
        return Response(AliasChangeOutputSerializer(change).data, status=status.HTTP_201_CREATED)


class ModelRollbackApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(request=ReasonInputSerializer, responses=AliasChangeOutputSerializer)
    def post(self, request, name):
        payload = ReasonInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        change = services.model_version_rollback(name=name, actor=request.user, reason=payload.validated_data["reason"])
        return Response(AliasChangeOutputSerializer(change).data, status=status.HTTP_201_CREATED)

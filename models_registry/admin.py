from django.contrib import admin

from .models import AliasChange, ModelVersion, RulePolicyOverride, TrainingJob
from .rules import RulePolicy


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "version",
        "task",
        "target",
        "estimator",
        "source_name",
        "n_train_rows",
        "created_by_label",
        "created_at",
    )
    list_filter = ("name", "task", "estimator")
    search_fields = ("name", "run_id", "training_data_sha256", "source_name", "target")
    readonly_fields = [f.name for f in ModelVersion._meta.fields]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False  # versions come from training, so MLflow and our table agree


@admin.register(AliasChange)
class AliasChangeAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "model_name",
        "alias",
        "action",
        "from_version",
        "to_version",
        "actor_label",
        "reason",
    )
    list_filter = ("model_name", "alias", "action")
    search_fields = ("model_name", "actor_label", "reason")
    readonly_fields = [f.name for f in AliasChange._meta.fields]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False  # an audit trail is written by the promotion service only

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "model_name",
        "original_filename",
        "target",
        "status",
        "progress",
        "model_version",
        "attempts",
        "heartbeat_at",
        "created_by",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "model_name")
    search_fields = ("model_name", "original_filename", "target", "error")
    readonly_fields = (
        "model_version",
        "attempts",
        "claimed_at",
        "heartbeat_at",
        "created_at",
        "started_at",
        "finished_at",
    )


@admin.register(RulePolicyOverride)
class RulePolicyOverrideAdmin(admin.ModelAdmin):
    list_display = ("model_name", "overrides", "updated_at")
    search_fields = ("model_name",)
    readonly_fields = ("effective_policy", "updated_at")

    @admin.display(description="Effective policy (rule: path → action)")
    def effective_policy(self, obj):
        try:
            table = RulePolicy.from_overrides(obj.overrides if obj else {}).as_table()
        except ValueError as exc:
            return str(exc)
        return "; ".join(f"{rule}: " + ", ".join(f"{p} {a}" for p, a in paths.items()) for rule, paths in table.items())

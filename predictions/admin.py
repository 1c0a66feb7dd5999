from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from . import routing
from .models import BatchJob, GoodFile, Prediction, ScheduledRun, TrafficPolicy, TrafficPolicyChange


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "model_name",
        "model_version",
        "source",
        "predicted_label",
        "predicted_value",
        "latency_ms",
        "actual_label",
        "actual_value",
    )
    list_filter = ("source", "model_name", "model_version")
    search_fields = ("request_id", "run_id")
    readonly_fields = [f.name for f in Prediction._meta.fields]
    date_hierarchy = "created_at"
    show_full_result_count = False  # no count(*) over millions of rows per page view

    def has_add_permission(self, request):
        return False


@admin.register(BatchJob)
class BatchJobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "original_filename",
        "status",
        "model_name",
        "model_version",
        "rows_done",
        "rows_total",
        "attempts",
        "heartbeat_at",
        "created_by",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "model_name")
    search_fields = ("original_filename", "error")


@admin.register(GoodFile)
class GoodFileAdmin(admin.ModelAdmin):
    list_display = ("id", "path", "rows", "status", "rows_scored", "created_at", "scored_at")
    list_filter = ("status",)
    search_fields = ("path", "sha256")


@admin.register(ScheduledRun)
class ScheduledRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "started_at",
        "finished_at",
        "status",
        "model_name",
        "model_version",
        "files_scored",
        "rows_scored",
    )
    list_filter = ("status", "model_name")
    search_fields = ("error",)


class TrafficPolicyForm(forms.ModelForm):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), help_text="Recorded with the change")

    class Meta:
        model = TrafficPolicy
        fields = ("model_name", "mode", "challenger_percent", "auto_promote")

    def clean_challenger_percent(self):
        value = self.cleaned_data["challenger_percent"]
        if not 0 < value < 100:
            raise ValidationError("A share between 0 and 100 (exclusive)")
        return value


@admin.register(TrafficPolicy)
class TrafficPolicyAdmin(admin.ModelAdmin):
    """Every change goes through `routing.traffic_policy_set`, which records who, when and why."""

    form = TrafficPolicyForm
    list_display = ("model_name", "mode", "challenger_percent", "auto_promote", "shadow_dropped", "updated_at")
    readonly_fields = ("shadow_dropped", "updated_at")

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "model_name") if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        routing.traffic_policy_set(
            model_name=obj.model_name,
            mode=data["mode"],
            challenger_percent=data["challenger_percent"],
            auto_promote=data["auto_promote"],
            actor=request.user,
            reason=data["reason"],
        )
        obj.pk = TrafficPolicy.objects.get(model_name=obj.model_name).pk  # the admin's log and redirect need it

    def has_delete_permission(self, request, obj=None):
        return False  # set the mode to production only instead: the change is recorded


@admin.register(TrafficPolicyChange)
class TrafficPolicyChangeAdmin(admin.ModelAdmin):
    list_display = ("created_at", "model_name", "mode", "challenger_percent", "auto_promote", "actor_label", "reason")
    list_filter = ("model_name", "mode")
    readonly_fields = [f.name for f in TrafficPolicyChange._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

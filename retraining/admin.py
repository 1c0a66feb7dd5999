from django.contrib import admin

from .models import RetrainJob, RetrainPolicy
from .services.policies import retrain_schedule_sync


@admin.register(RetrainPolicy)
class RetrainPolicyAdmin(admin.ModelAdmin):
    list_display = (
        "model_name",
        "schedule_every_minutes",
        "drift_trigger",
        "drift_min_interval_minutes",
        "auto_promote",
    )
    search_fields = ("model_name",)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        retrain_schedule_sync(obj)


@admin.register(RetrainJob)
class RetrainJobAdmin(admin.ModelAdmin):
    list_display = ("id", "model_name", "trigger", "status", "outcome", "model_version", "created_at")
    list_filter = ("status", "trigger", "outcome")
    search_fields = ("model_name",)
    readonly_fields = [f.name for f in RetrainJob._meta.fields]

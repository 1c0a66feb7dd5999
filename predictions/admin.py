from django.contrib import admin

from .models import BatchJob, GoodFile, Prediction, ScheduledRun


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

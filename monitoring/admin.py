from django.contrib import admin

from .models import (
    Alert,
    DataQualityIssue,
    DriftReport,
    DriftSettings,
    FeatureDrift,
    IngestedFile,
    IngestionRun,
    PredictionRollup,
)


class DataQualityIssueInline(admin.TabularInline):
    model = DataQualityIssue
    extra = 0
    readonly_fields = ("rule", "column", "severity", "count", "sample_values", "message")
    can_delete = False


@admin.register(IngestedFile)
class IngestedFileAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "original_name",
        "status",
        "rows_in",
        "rows_good",
        "rows_bad",
        "model_version",
        "started_at",
        "finished_at",
    )
    list_filter = ("status", "model_name")
    search_fields = ("original_name", "sha256", "reason")
    date_hierarchy = "started_at"
    inlines = [DataQualityIssueInline]


@admin.register(IngestionRun)
class IngestionRunAdmin(admin.ModelAdmin):
    list_display = ("id", "started_at", "finished_at", "files_seen", "files_processed", "error")
    date_hierarchy = "started_at"


@admin.register(DataQualityIssue)
class DataQualityIssueAdmin(admin.ModelAdmin):
    list_display = ("id", "ingested_file", "rule", "column", "severity", "count", "created_at")
    list_filter = ("rule", "severity")
    search_fields = ("column", "message", "ingested_file__original_name")


class FeatureDriftInline(admin.TabularInline):
    model = FeatureDrift
    extra = 0
    can_delete = False
    readonly_fields = (
        "feature",
        "kind",
        "test",
        "statistic",
        "p_value",
        "effect_name",
        "effect_size",
        "psi",
        "method_used",
        "threshold",
        "drifted",
        "verdict",
        "n_window",
    )
    exclude = ("n_reference", "missing_share_window", "p_value_adjusted", "distribution")


@admin.register(DriftReport)
class DriftReportAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "model_name",
        "model_version",
        "n_rows",
        "dataset_drift",
        "drifted_share",
        "prediction_drift",
    )
    list_filter = ("dataset_drift", "model_name")
    date_hierarchy = "created_at"
    inlines = [FeatureDriftInline]


@admin.register(FeatureDrift)
class FeatureDriftAdmin(admin.ModelAdmin):
    list_display = ("id", "report", "feature", "test", "statistic", "p_value", "effect_size", "drifted")
    list_filter = ("drifted", "test", "feature")
    search_fields = ("feature",)


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "kind",
        "severity",
        "title",
        "email_sent_at",
        "webhook_sent_at",
        "acknowledged_at",
    )
    list_filter = ("kind", "severity")
    search_fields = ("title", "message", "dedup_key")
    date_hierarchy = "created_at"


@admin.register(DriftSettings)
class DriftSettingsAdmin(admin.ModelAdmin):
    list_display = ("model_name", "window_rows", "min_rows", "updated_at")
    search_fields = ("model_name",)


@admin.register(PredictionRollup)
class PredictionRollupAdmin(admin.ModelAdmin):
    list_display = ("hour", "model_name", "model_version", "source", "predicted_label", "actual_label", "n")
    list_filter = ("model_name", "source")
    date_hierarchy = "hour"

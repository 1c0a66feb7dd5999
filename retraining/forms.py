from django import forms

from .models import RetrainPolicy


class RetrainPolicyForm(forms.ModelForm):
    class Meta:
        model = RetrainPolicy
        fields = (
            "schedule_every_minutes",
            "drift_trigger",
            "drift_min_interval_minutes",
            "data_window_days",
            "min_eval_rows",
            "primary_metric",
            "primary_margin",
            "guard_tolerance",
            "latency_p99_max_ratio",
            "latency_slack_ms",
            "size_max_ratio",
            "auto_promote",
        )

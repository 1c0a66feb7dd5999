"""Forms generated from the served model's training profile."""

from django import forms
from django.conf import settings

from models_registry.profile import NUMERIC
from models_registry.rules import Action, CategoryRule, RulePath, RuleTable

from .models import Source


def _number_hint(spec) -> str:
    if spec.minimum is None or spec.maximum is None:
        return "number"
    return f"training range {spec.minimum:g} – {spec.maximum:g}"


def _typical_number(spec):
    """The training median, so the form starts on a realistic row."""
    if spec.median is None:
        return None
    return round(spec.median) if spec.dtype == "integer" else round(spec.median, 4)


class CategoryField(forms.ChoiceField):
    """A select of the training categories that, when the model's policy accepts an unseen
    category with a warning, takes one too (posted by a client, not offered by the select)."""

    def __init__(self, *args, accept_unseen: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.accept_unseen = accept_unseen

    def valid_value(self, value):
        return self.accept_unseen or super().valid_value(value)


class PredictForm(forms.Form):
    """One field per feature of the model: numbers with their training range, categories as
    selects; each starts at its training median or most frequent category. Which fields are
    required comes from the model's rule table (a missing value its form policy refuses);
    every value is then checked by the same rules as the API (`predictions_make`)."""

    def __init__(self, *args, specs: dict, table: RuleTable | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        accept_unseen = table is None or table.action(CategoryRule.name, RulePath.FORM) == Action.WARN
        for name, spec in specs.items():
            required = table.missing_refused(name, RulePath.FORM) if table is not None else spec.missing_share == 0
            if spec.kind == NUMERIC:
                step = "1" if spec.dtype == "integer" else "any"
                self.fields[name] = forms.FloatField(
                    required=required,
                    initial=_typical_number(spec),
                    help_text=_number_hint(spec),
                    widget=forms.NumberInput(attrs={"step": step, "placeholder": _number_hint(spec)}),
                )
            elif spec.is_datetime:  # ISO text, checked by the rule table; the browser's picker gives ISO
                with_time = "hour" in spec.parts
                self.fields[name] = forms.CharField(
                    required=required,
                    initial=(spec.last or "").replace(" ", "T") if with_time else spec.last,
                    help_text=f"a date (ISO 8601); training: {spec.first} to {spec.last}",
                    widget=forms.DateInput(attrs={"type": "datetime-local" if with_time else "date"}),
                )
            else:
                choices = [(c, c) for c in sorted(spec.categories)]
                if not required:
                    choices.insert(0, ("", "(missing)"))
                initial = spec.categories[0] if spec.categories else None  # the most frequent in training
                self.fields[name] = CategoryField(
                    choices=choices, required=required, initial=initial, accept_unseen=accept_unseen
                )

    def record(self) -> dict:
        """The validated row, as the API would receive it (blank optional fields are null)."""
        return {name: (value if value != "" else None) for name, value in self.cleaned_data.items()}


class BatchUploadForm(forms.Form):
    csv_file = forms.FileField(label="CSV to score", help_text="A header row with the model's feature columns.")

    def clean_csv_file(self):
        upload = self.cleaned_data["csv_file"]
        if upload.size == 0:
            raise forms.ValidationError("The file is empty.")
        if upload.size > settings.MLAPP_MAX_UPLOAD_MB * 1024 * 1024:
            raise forms.ValidationError(f"The file is larger than {settings.MLAPP_MAX_UPLOAD_MB} MB.")
        return upload


class PredictionFilterForm(forms.Form):
    since = forms.DateTimeField(
        required=False, label="From", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    until = forms.DateTimeField(
        required=False, label="To", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    source = forms.ChoiceField(
        required=False,
        choices=[("", "any source"), *Source.choices],
    )
    model_version = forms.IntegerField(required=False, min_value=1, label="Model version")
    variant = forms.ChoiceField(
        required=False,
        label="Answered by",
        choices=[
            ("", "production or A/B challenger"),
            ("production", "production"),
            ("challenger", "challenger (A/B)"),
            ("shadow", "shadow (not returned)"),
        ],
    )


class TrafficPolicyEditForm(forms.Form):
    """A model's traffic policy as staff edit it on the comparison page (`routing.traffic_policy_set`)."""

    mode = forms.ChoiceField(choices=[("production", "production only"), ("shadow", "shadow"), ("ab", "A/B split")])
    challenger_percent = forms.FloatField(
        label="Challenger share (%)", min_value=0.01, max_value=99.99, initial=10.0, help_text="A/B only"
    )
    auto_promote = forms.BooleanField(
        required=False, label="Promote automatically when the A/B verdict is clearly better"
    )
    reason = forms.CharField(max_length=1000, widget=forms.TextInput(attrs={"placeholder": "Why (recorded)"}))

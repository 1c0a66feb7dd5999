from django import forms
from django.conf import settings
from django.core.validators import RegexValidator

model_name_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
    "Use letters, digits, '.', '_' or '-' (at most 100 characters, starting with a letter or digit).",
)


class TrainingForm(forms.Form):
    csv_file = forms.FileField(label="Training CSV", help_text="A CSV with a header row and a target column.")
    target = forms.CharField(max_length=255, help_text="The column to predict.")
    model_name = forms.CharField(
        max_length=100,
        validators=[model_name_validator],
        widget=forms.TextInput(attrs={"list": "model-names", "autocomplete": "off"}),
    )
    task = forms.ChoiceField(
        choices=[("", "Infer from the target"), ("classification", "Classification"), ("regression", "Regression")],
        required=False,
    )
    allow_schema_change = forms.BooleanField(
        required=False,
        label="Register anyway",
        help_text="The new version answers another question or takes other inputs than the production version.",
    )

    def clean_csv_file(self):
        upload = self.cleaned_data["csv_file"]
        limit = settings.MLAPP_MAX_UPLOAD_MB * 1024 * 1024
        if upload.size == 0:
            raise forms.ValidationError("The file is empty.")
        if upload.size > limit:
            raise forms.ValidationError(f"The file is larger than {settings.MLAPP_MAX_UPLOAD_MB} MB.")
        return upload


class AliasMoveForm(forms.Form):
    reason = forms.CharField(max_length=1000, widget=forms.TextInput, help_text="Recorded in the audit trail.")


class PromoteForm(AliasMoveForm):
    confirm_schema_change = forms.BooleanField(
        required=False,
        label="Promote anyway",
        help_text="I have read the differences: this model's pages, API, ingestion and drift checks will follow them.",
    )


class ModelImportForm(forms.Form):
    """Register an existing MLflow model (`importing.model_import`)."""

    model_name = forms.CharField(
        max_length=100,
        validators=[model_name_validator],
        widget=forms.TextInput(attrs={"list": "model-names", "autocomplete": "off"}),
    )
    source = forms.CharField(
        label="MLflow model",
        max_length=1000,
        help_text="runs:/<run id>/<path> or models:/<name>/<version> in mlapp's MLflow store, or a model directory "
        "on the server. Only scikit-learn models saved with skops are accepted.",
    )
    reference_csv = forms.FileField(label="Reference CSV", help_text="Rows like those the model will see.")
    target = forms.CharField(max_length=255, help_text="What the model predicts (a column of the CSV, if it has one).")
    task = forms.ChoiceField(
        choices=[("", "From the model"), ("classification", "Classification"), ("regression", "Regression")],
        required=False,
    )
    promote = forms.BooleanField(required=False, label="Promote to production once registered")
    allow_schema_change = forms.BooleanField(
        required=False,
        label="Register anyway",
        help_text="The new version answers another question or takes other inputs than the production version.",
    )

    def clean_reference_csv(self):
        upload = self.cleaned_data["reference_csv"]
        limit = settings.MLAPP_MAX_UPLOAD_MB * 1024 * 1024
        if upload.size == 0:
            raise forms.ValidationError("The file is empty.")
        if upload.size > limit:
            raise forms.ValidationError(f"The file is larger than {settings.MLAPP_MAX_UPLOAD_MB} MB.")
        return upload

"""`manage.py train`: the model is always named; nothing is written when the input is refused."""

import pytest
from django.core.management import CommandError, call_command

from models_registry.models import ModelVersion

pytestmark = pytest.mark.django_db


def test_the_model_name_is_required(mlflow_store, churn_csv):
    before = ModelVersion.objects.count()
    with pytest.raises(CommandError, match="the following arguments are required: --name"):
        call_command("train", "--csv", str(churn_csv), "--target", "churned")
    assert ModelVersion.objects.count() == before

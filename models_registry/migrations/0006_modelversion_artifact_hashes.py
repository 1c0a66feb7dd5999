from django.db import migrations, models


class Migration(migrations.Migration):
    """Record each version's artifact hashes (models_registry/trust.py).

    Versions registered before this have none and are refused at load until their files are
    checked and recorded with `manage.py model_hashes_record` (docs/security.md).
    """

    dependencies = [("models_registry", "0005_trainingjob_allow_schema_change")]

    operations = [
        migrations.AddField(
            model_name="modelversion",
            name="artifact_uri",
            field=models.CharField(blank=True, help_text="Where the model's files are stored", max_length=1024),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="artifact_sha256",
            field=models.CharField(
                blank=True, help_text="SHA-256 over the manifest of every file of the model directory", max_length=64
            ),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="artifact_manifest",
            field=models.JSONField(
                blank=True, default=dict, help_text='{"algorithm": "sha256", "files": {"MLmodel": "<sha256>", ...}}'
            ),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="origin",
            field=models.CharField(default="trained", help_text="trained or imported", max_length=16),
        ),
    ]

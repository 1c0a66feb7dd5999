from django.db import migrations, models


def reports_so_far_made_the_status(apps, schema_editor):
    """Reports stored before the flag were the model's drift status: they stay it until the next scheduled one."""
    apps.get_model("monitoring", "driftreport").objects.update(scheduled=True)


class Migration(migrations.Migration):

    dependencies = [
        ("monitoring", "0004_ingested_file_heartbeat"),
    ]

    operations = [
        migrations.AddField(
            model_name="driftreport",
            name="scheduled",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="driftsettings",
            name="scheduled_min_rows",
            field=models.PositiveIntegerField(
                default=500,
                help_text="A scheduled check judges the rows since the previous one, extended back to this many "
                "when fewer",
            ),
        ),
        migrations.AddIndex(
            model_name="driftreport",
            index=models.Index(fields=["model_name", "scheduled", "-created_at"], name="drift_report_status"),
        ),
        migrations.RunPython(reports_so_far_made_the_status, migrations.RunPython.noop),
    ]

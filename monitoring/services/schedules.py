"""Default Celery beat schedules, declared by each app in its `schedules.py`.

`periodic_tasks_setup` is idempotent: it creates what is missing, keeps the
interval and enabled flag a person set in the admin, and refreshes the rest.
"""

from importlib import import_module

from django.apps import apps
from django_celery_beat.models import IntervalSchedule, PeriodicTask


def default_periodic_tasks() -> list[dict]:
    specs = []
    for app_config in apps.get_app_configs():
        try:
            module = import_module(f"{app_config.name}.schedules")
        except ModuleNotFoundError as exc:
            if exc.name != f"{app_config.name}.schedules":
                raise
            continue
        specs.extend(module.periodic_tasks())
    return specs


def periodic_tasks_setup() -> list[str]:
    lines = []
    for spec in default_periodic_tasks():
        existing = PeriodicTask.objects.filter(name=spec["name"]).first()
        if existing is None:
            interval, _ = IntervalSchedule.objects.get_or_create(
                every=spec["every_seconds"], period=IntervalSchedule.SECONDS
            )
            PeriodicTask.objects.create(
                name=spec["name"],
                task=spec["task"],
                interval=interval,
                expire_seconds=spec.get("expires_seconds"),
                description=spec.get("description", ""),
            )
            lines.append(f"created {spec['name']}: every {spec['every_seconds']} s")
        else:
            existing.task = spec["task"]
            existing.expire_seconds = spec.get("expires_seconds")
            existing.description = spec.get("description", "")
            existing.save(update_fields=["task", "expire_seconds", "description"])
            lines.append(f"kept {spec['name']}: every {existing.interval} (edit it in the admin)")
    return lines

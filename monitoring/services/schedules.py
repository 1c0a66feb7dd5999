"""Default Celery beat schedules, declared by each app in its `schedules.py`.

An app's `periodic_tasks()` lists the platform-wide schedules; its optional
`model_periodic_tasks(model_name)` those every served model gets, with the model
named in the task's arguments (never read from a setting). `periodic_tasks_setup`
is idempotent: it creates what is missing, keeps the interval and enabled flag a
person set in the admin, and refreshes the rest.
"""

import json
from importlib import import_module

from django.apps import apps
from django_celery_beat.models import IntervalSchedule, PeriodicTask

# Defaults of the single-model days: their tasks now need a model, so they go.
RETIRED = ("ingest raw files", "check drift", "score good files")


def _schedule_modules():
    for app_config in apps.get_app_configs():
        try:
            yield import_module(f"{app_config.name}.schedules")
        except ModuleNotFoundError as exc:
            if exc.name != f"{app_config.name}.schedules":
                raise


def default_periodic_tasks() -> list[dict]:
    return [spec for module in _schedule_modules() for spec in module.periodic_tasks()]


def model_periodic_tasks(model_name: str) -> list[dict]:
    return [
        spec
        for module in _schedule_modules()
        if hasattr(module, "model_periodic_tasks")
        for spec in module.model_periodic_tasks(model_name)
    ]


def _periodic_task_ensure(spec: dict) -> str:
    kwargs = json.dumps(spec.get("kwargs", {}), sort_keys=True)
    existing = PeriodicTask.objects.filter(name=spec["name"]).first()
    if existing is None:
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=spec["every_seconds"], period=IntervalSchedule.SECONDS
        )
        PeriodicTask.objects.create(
            name=spec["name"],
            task=spec["task"],
            kwargs=kwargs,
            interval=interval,
            expire_seconds=spec.get("expires_seconds"),
            description=spec.get("description", ""),
            enabled=spec.get("enabled", True),
        )
        return f"created {spec['name']}: every {spec['every_seconds']} s"
    wanted = {
        "task": spec["task"],
        "kwargs": kwargs,
        "expire_seconds": spec.get("expires_seconds"),
        "description": spec.get("description", ""),
    }
    changed = [field for field, value in wanted.items() if getattr(existing, field) != value]
    if changed:  # a save makes beat reload every schedule: only when something changed
        for field in changed:
            setattr(existing, field, wanted[field])
        existing.save(update_fields=changed)
    return f"kept {spec['name']}: {existing.interval} (edit it in the admin)"


def model_periodic_tasks_setup(model_name: str) -> list[str]:
    return [_periodic_task_ensure(spec) for spec in model_periodic_tasks(model_name)]


def periodic_tasks_setup(*, model_names: list[str] = ()) -> list[str]:
    """The platform's schedules, and those of each model in `model_names`."""
    lines = []
    retired = PeriodicTask.objects.filter(name__in=RETIRED)
    lines.extend(f"removed {name}: now one schedule per model" for name in retired.values_list("name", flat=True))
    retired.delete()
    lines.extend(_periodic_task_ensure(spec) for spec in default_periodic_tasks())
    for name in model_names:
        lines.extend(model_periodic_tasks_setup(name))
    return lines

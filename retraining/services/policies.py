"""Each model's retrain policy: read with defaults, saved with its beat entry kept in step."""

from __future__ import annotations

from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from models_registry.demo_data import DEMO_MODEL_NAME

from ..models import RetrainPolicy
from ..schedules import OFF_INTERVAL_SECONDS, retrain_schedule_name

# The demo retrains by itself (the point of `scripts/run --demo-stream`); every other model is off by default.
DEMO_POLICY = {"schedule_every_minutes": 30, "drift_trigger": True, "drift_min_interval_minutes": 10}


def retrain_policy_get(*, model_name: str, create_demo: bool = False) -> RetrainPolicy:
    """The model's policy; an unsaved one with the defaults (no schedule, no drift trigger) when it has none.
    With `create_demo`, the demo model's policy is created on first use."""
    policy = RetrainPolicy.objects.filter(model_name=model_name).first()
    if policy is not None:
        return policy
    if create_demo and model_name == DEMO_MODEL_NAME:
        policy, _ = RetrainPolicy.objects.get_or_create(model_name=model_name, defaults=DEMO_POLICY)
        return policy
    return RetrainPolicy(model_name=model_name)


@transaction.atomic
def retrain_policy_save(policy: RetrainPolicy) -> RetrainPolicy:
    """Validate and save the policy; the model's beat entry takes its interval and on/off."""
    policy.full_clean()
    policy.save()
    retrain_schedule_sync(policy)
    return policy


def retrain_schedule_sync(policy: RetrainPolicy) -> None:
    task = PeriodicTask.objects.filter(name=retrain_schedule_name(policy.model_name)).first()
    if task is None:  # not served yet: deployment set-up creates the entry from the policy
        return
    every = policy.schedule_every_minutes * 60 or OFF_INTERVAL_SECONDS
    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
    enabled = bool(policy.schedule_every_minutes)
    if task.interval_id != interval.pk or task.enabled != enabled:
        task.interval, task.enabled = interval, enabled
        task.expire_seconds = max(min(every - 10, 3600), 10)
        task.save(update_fields=["interval", "enabled", "expire_seconds"])

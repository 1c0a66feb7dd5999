"""The retraining beat entry of every served model (see monitoring/services/schedules.py).

Its interval and on/off follow the model's `RetrainPolicy` (`services.policies.retrain_policy_save`
keeps them in step); a model without a policy has the entry switched off.
"""

RETRAIN_TASK = "retraining.retrain_scheduled"
OFF_INTERVAL_SECONDS = 3600


def retrain_schedule_name(model_name: str) -> str:
    return f"retrain · {model_name}"


def periodic_tasks() -> list[dict]:
    return []


def model_periodic_tasks(model_name: str) -> list[dict]:
    from .services.policies import retrain_policy_get  # noqa: PLC0415 (models load after the apps)

    policy = retrain_policy_get(model_name=model_name, create_demo=True)
    every = policy.schedule_every_minutes * 60 or OFF_INTERVAL_SECONDS
    return [
        {
            "name": retrain_schedule_name(model_name),
            "task": RETRAIN_TASK,
            "kwargs": {"model_name": model_name},
            "every_seconds": every,
            "expires_seconds": max(min(every - 10, 3600), 10),
            "enabled": bool(policy.schedule_every_minutes),
            "description": f"Retrain {model_name} on its labelled data and compare the challenger with production "
            "(interval and on/off: the model's retrain policy).",
        }
    ]

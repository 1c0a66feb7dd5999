"""First-run set-up of the platform: admin account, demo model, schedules.

Every step is idempotent: a second run reuses what exists.
"""

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model

from models_registry import mlflow_access, selectors, services
from models_registry.demo_data import DEMO_MODEL_NAME, DEMO_TARGETS, demo_frame
from models_registry.models import AliasChange, ModelVersion
from models_registry.training import model_train

from .deployments import deployments_sync

ADMIN_USERNAME = "admin"
# Who trained and promoted the demo model, in its version record and the alias history.
BOOTSTRAP_ACTOR = "bootstrap"


def admin_account_ensure() -> str:
    """Create the admin account once; return how to log in."""
    password_file = Path(settings.VAR_DIR) / "admin-password.txt"
    user_model = get_user_model()
    if user_model.objects.filter(username=ADMIN_USERNAME).exists():
        if password_file.exists():
            return f"log in as '{ADMIN_USERNAME}' with the password in {password_file}"
        return f"log in as '{ADMIN_USERNAME}' (account existed before; password not managed by bootstrap)"
    password = os.environ.get("MLAPP_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    user_model.objects.create_superuser(ADMIN_USERNAME, "admin@localhost", password)
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    return f"log in as '{ADMIN_USERNAME}' with password {password} (also saved in {password_file})"


def demo_model_ensure(*, dataset: str = "churn", name: str = DEMO_MODEL_NAME) -> str:
    """Train, register and promote the demo model under its own name, once.

    Only the demo's name is ever written to, and only while every version it holds is
    one the bootstrap trained: a model of that name made by anyone else (other data,
    features or task) is left exactly as it is.
    """
    registered = {int(v.version) for v in mlflow_access.client().search_model_versions(f"name = '{name}'")}
    demo_versions = set(
        ModelVersion.objects.filter(name=name, created_by_label=BOOTSTRAP_ACTOR).values_list("version", flat=True)
    )
    others = sorted(registered - demo_versions)
    if others:
        listed = ", ".join(f"v{v}" for v in others)
        if demo_versions:
            return f"{name} holds versions trained since the bootstrap ({listed}): left as it is"
        return f"{name} already exists and is not the demo model ({listed} not trained by the bootstrap): left as it is"
    if selectors.production_version_get(name) is not None:
        return f"{name} already has a production version: kept"
    demo_dir = Path(settings.VAR_DIR) / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    csv_path = demo_dir / f"{dataset}.csv"
    if not csv_path.exists():
        partial = csv_path.with_suffix(".csv.part")
        demo_frame(dataset, n_rows=5000, seed=0).to_csv(partial, index=False)
        partial.replace(csv_path)
    # Same data as a version the bootstrap trained before (and did not get to promote): reused.
    result = model_train(csv=csv_path, target=DEMO_TARGETS[dataset], name=name, actor_label=BOOTSTRAP_ACTOR)
    services.alias_move(
        name=name,
        version=result.model_version.version,
        action=AliasChange.Action.BOOTSTRAP,
        actor_label=BOOTSTRAP_ACTOR,
        reason=f"demo model trained on generated {dataset} data",
    )
    return f"trained {name} version {result.model_version.version} on {csv_path} and promoted it to production"


def platform_bootstrap(
    *, dataset: str = "churn", with_demo_model: bool = True, demo_name: str = DEMO_MODEL_NAME
) -> list[str]:
    lines = [admin_account_ensure()]
    if with_demo_model:
        lines.append(demo_model_ensure(dataset=dataset, name=demo_name))
    lines.extend(deployments_sync())  # every served model's folders (raw/<model>/) and schedules
    return lines

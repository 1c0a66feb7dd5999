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
from models_registry.models import AliasChange
from models_registry.training import model_train

from .deployments import deployments_sync

ADMIN_USERNAME = "admin"


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


def demo_model_ensure(*, dataset: str = "churn", name: str | None = None) -> str:
    """Train, register and promote the demo model unless the served model already has a production version."""
    name = name or DEMO_MODEL_NAME
    if selectors.model_aliases(name).get(mlflow_access.PRODUCTION):
        return f"{name} already has a production version: kept"
    demo_dir = Path(settings.VAR_DIR) / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    csv_path = demo_dir / f"{dataset}.csv"
    if not csv_path.exists():
        partial = csv_path.with_suffix(".csv.part")
        demo_frame(dataset, n_rows=5000, seed=0).to_csv(partial, index=False)
        partial.replace(csv_path)
    result = model_train(csv=csv_path, target=DEMO_TARGETS[dataset], name=name, actor_label="bootstrap")
    services.alias_move(
        name=name,
        version=result.model_version.version,
        action=AliasChange.Action.BOOTSTRAP,
        actor_label="bootstrap",
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

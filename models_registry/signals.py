"""What models_registry tells the apps above it, without importing them (they connect in their AppConfig)."""

from django.dispatch import Signal

# A served version changed (promotion, rollback, bootstrap, checked outside move), after commit.
# kwargs: change (AliasChange). Monitoring creates the model's folders and schedules on it.
served_version_changed = Signal()

# A move made in MLflow directly failed its smoke test and is not served. kwargs: change (AliasChange).
outside_move_refused = Signal()

# A version may not be loaded: mlapp did not register it, its files changed, or its format would run code.
# kwargs: name, version, reason. Sent once per process and reason; monitoring raises a critical alert.
model_refused = Signal()

"""What monitoring tells the apps above it, without importing them (they connect in their AppConfig)."""

from django.dispatch import Signal

# A scheduled drift check stored its report (after commit). kwargs: report (DriftReport).
# The retraining app's drift trigger listens to it.
scheduled_drift_checked = Signal()

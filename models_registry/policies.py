"""Each model's row-rule policy: the defaults of `rules.RulePolicy` with the model's stored overrides.

Read on every request, so it is cached per process for ``MLAPP_MODEL_POLL_SECONDS``
(an edit in the admin reaches every process within that interval, this one at once).
"""

from __future__ import annotations

import threading
import time
from functools import cache

from django.conf import settings

from .models import RulePolicyOverride
from .rules import PolicyError, RulePolicy


class RulePolicyInvalid(PolicyError):
    """The stored overrides of a model cannot be applied (edited outside the admin's checks)."""


class _PolicyCache:
    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, float], tuple[float, RulePolicy]] = {}

    def get(self, model_name: str, range_tolerance: float, max_age: float) -> RulePolicy:
        key = (model_name, range_tolerance)
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry[0] < max_age:
            return entry[1]
        record = RulePolicyOverride.objects.filter(model_name=model_name).only("overrides").first()
        try:
            policy = RulePolicy.from_overrides(record.overrides if record else {}, range_tolerance=range_tolerance)
        except PolicyError as exc:
            raise RulePolicyInvalid(f"the rule policy of {model_name} is invalid: {exc}") from exc
        with self._lock:
            self._entries[key] = (time.monotonic(), policy)
        return policy

    def forget(self, model_name: str | None) -> None:
        with self._lock:
            for key in list(self._entries):
                if model_name is None or key[0] == model_name:
                    self._entries.pop(key, None)


@cache
def _cache() -> _PolicyCache:
    return _PolicyCache()


def rule_policy_get(*, model_name: str, range_tolerance: float | None = None) -> RulePolicy:
    """The policy of ``model_name``: code defaults, ``MLAPP_INGEST_RANGE_TOLERANCE``, then its overrides."""
    if range_tolerance is None:
        range_tolerance = settings.MLAPP_INGEST_RANGE_TOLERANCE
    return _cache().get(model_name, float(range_tolerance), settings.MLAPP_MODEL_POLL_SECONDS)


def rule_policy_forget(model_name: str | None = None) -> None:
    _cache().forget(model_name)

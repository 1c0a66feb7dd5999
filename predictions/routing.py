"""Routing a model's API and form requests between its production and challenger versions.

A model's `TrafficPolicy` (none: production only) says how:

- **production only**: production answers.
- **shadow**: production answers; the challenger scores the same rows **off the response
  path** and its answers are stored as ``variant="shadow"`` rows beside production's, each
  pointing at the production row it shadows. The work goes to a bounded queue in the
  process, emptied by one worker thread (``MLAPP_SHADOW_RUNNER=thread``, the default) or to
  a Celery task per request (``celery``); a full queue drops the shadow work and counts it,
  production never waits for it.
- **A/B**: a deterministic share of requests is answered by the challenger: the request key
  (``X-Request-Key`` header or ``request_key`` field) is hashed with the model's name into
  [0, 1); below the challenger share the challenger answers. Same key, same variant; no key,
  a fresh draw per request. Each stored row records the variant that answered.

`predictions_make` (the API and the predict form) is the one caller: `route_pick` before
validation, `shadow_submit` after the production rows are stored. Batch and scheduled
scoring never route: they score with production.

If the challenger alias is missing, points at the production version, or its version cannot
be loaded, the request is answered by production (and logged), never refused.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import random
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from functools import cache

from django.conf import settings
from django.db import close_old_connections, connections, transaction
from django.db.models import F
from django.utils.dateparse import parse_datetime

from models_registry.rules import RulePath
from models_registry.serving import ModelUnavailable, ServedModel, loader

from .models import Prediction, TrafficMode, TrafficPolicy, TrafficPolicyChange, Variant
from .validation import FieldError, InputValidationError, records_check

logger = logging.getLogger(__name__)

CHALLENGER = "challenger"  # the registry alias the challenger version carries
REQUEST_KEY_HEADER = "X-Request-Key"
# As WSGI names it: views read it from META (request.headers copies every header on first use).
REQUEST_KEY_META = "HTTP_" + REQUEST_KEY_HEADER.upper().replace("-", "_")
_HASH_SCALE = float(2**64)


# --------------------------------------------------------------------------- the policy


class TrafficPolicyError(ValueError):
    """The policy cannot be set as asked; the message says why."""


@dataclass(frozen=True)
class Policy:
    """A model's traffic policy as the request path reads it."""

    mode: str = TrafficMode.PRODUCTION
    challenger_percent: float = 10.0
    auto_promote: bool = False

    @property
    def challenger_share(self) -> float:
        return self.challenger_percent / 100.0


PRODUCTION_ONLY = Policy()


class _PolicyCache:
    """Each model's policy, read at most every ``MLAPP_MODEL_POLL_SECONDS`` per process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Policy]] = {}

    def get(self, model_name: str, max_age: float) -> Policy:
        entry = self._entries.get(model_name)
        if entry is not None and time.monotonic() - entry[0] < max_age:
            return entry[1]
        record = TrafficPolicy.objects.filter(model_name=model_name).first()
        policy = (
            Policy(record.mode, record.challenger_percent, record.auto_promote)
            if record is not None
            else PRODUCTION_ONLY
        )
        with self._lock:
            self._entries[model_name] = (time.monotonic(), policy)
        return policy

    def forget(self, model_name: str | None = None) -> None:
        with self._lock:
            if model_name is None:
                self._entries.clear()
            else:
                self._entries.pop(model_name, None)


@cache
def _policies() -> _PolicyCache:
    return _PolicyCache()


def traffic_policy_get(*, model_name: str) -> Policy:
    return _policies().get(model_name, settings.MLAPP_MODEL_POLL_SECONDS)


def traffic_policy_forget(model_name: str | None = None) -> None:
    _policies().forget(model_name)


def traffic_policy_set(
    *,
    model_name: str,
    mode: str,
    challenger_percent: float | None = None,
    auto_promote: bool | None = None,
    actor=None,
    actor_label: str = "",
    reason: str,
) -> TrafficPolicyChange:
    """Change a model's traffic policy and record who, when, why and what it was before.

    Raises `TrafficPolicyError` naming the problem (an unknown mode, a share outside 0-100, no
    reason); nothing is written then.
    """
    if mode not in TrafficMode.values:
        raise TrafficPolicyError(f"mode: {mode!r} is not one of {', '.join(TrafficMode.values)}")
    if not reason or not reason.strip():
        raise TrafficPolicyError("reason: a reason is required for every traffic policy change")
    with transaction.atomic():
        record = TrafficPolicy.objects.select_for_update().filter(model_name=model_name).first()
        previous = (
            {"mode": record.mode, "challenger_percent": record.challenger_percent, "auto_promote": record.auto_promote}
            if record is not None
            else {}
        )
        if record is None:
            record = TrafficPolicy(model_name=model_name)
        if challenger_percent is not None:
            record.challenger_percent = float(challenger_percent)
        if auto_promote is not None:
            record.auto_promote = bool(auto_promote)
        if not 0.0 < record.challenger_percent < 100.0:
            raise TrafficPolicyError(
                f"challenger_percent: {record.challenger_percent:g} is not a share between 0 and 100 (exclusive)"
            )
        record.mode = mode
        record.save()
        change = TrafficPolicyChange.objects.create(
            model_name=model_name,
            mode=record.mode,
            challenger_percent=record.challenger_percent,
            auto_promote=record.auto_promote,
            previous=previous,
            actor=actor,
            actor_label=actor_label or getattr(actor, "username", "") or "system",
            reason=reason.strip(),
        )
    traffic_policy_forget(model_name)
    logger.info(
        "%s traffic policy: %s -> %s by %s (%s)", model_name, previous or "none", mode, change.actor_label, reason
    )
    return change


def traffic_policy_changes(*, model_name: str, limit: int = 50):
    """The model's policy changes, newest first."""
    return TrafficPolicyChange.objects.filter(model_name=model_name).select_related("actor")[:limit]


# --------------------------------------------------------------------------- picking a variant


def request_bucket(*, model_name: str, request_key: str) -> float:
    """Where a request key falls in [0, 1) for a model: a hash, so the same key always lands the same."""
    digest = hashlib.blake2b(f"{model_name}\x00{request_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _HASH_SCALE


MAX_REQUEST_KEY_LENGTH = 200


def request_key_read(*, header: str | None, field) -> str | None:
    """The request's key for the A/B split: the header, else the body's ``request_key`` field."""
    key = header if header else field
    if key is None or key == "":
        return None
    if not isinstance(key, str) or len(key) > MAX_REQUEST_KEY_LENGTH:
        raise InputValidationError(
            [FieldError(None, "request_key", f"expected text of at most {MAX_REQUEST_KEY_LENGTH} characters")]
        )
    return key


def variant_pick(*, model_name: str, request_key: str | None, challenger_share: float) -> str:
    """A/B: which variant answers a request (no key: a fresh draw per request)."""
    if request_key:
        point = request_bucket(model_name=model_name, request_key=request_key)
    else:
        point = random.random()
    return Variant.CHALLENGER if point < challenger_share else Variant.PRODUCTION


@dataclass(frozen=True)
class Route:
    answer: ServedModel  # the version whose answer is returned and stored
    variant: str
    # Shadow mode: the challenger version that scores the rows off the path (loaded there, not here).
    shadow_version: int | None = None


_unloadable: dict[tuple[str, int], float] = {}  # (model, version) -> when loading it last failed


def challenger_version_get(*, model_name: str, production: ServedModel) -> int | None:
    """The model's challenger version; None when there is none, it is production's, or it could not
    be loaded lately (tried again after ``MLAPP_MODEL_POLL_SECONDS``). Resolved like production's:
    from the alias history, re-read in the background (`ModelLoader.version_resolve`)."""
    try:
        version = loader().version_resolve(model_name, CHALLENGER)
    except ModelUnavailable:
        return None
    if version == production.version:
        return None
    failed_at = _unloadable.get((model_name, version))
    if failed_at is not None and time.monotonic() - failed_at < max(settings.MLAPP_MODEL_POLL_SECONDS, 1.0):
        return None
    return version


def _load_failed(model_name: str, version: int) -> None:
    _unloadable[(model_name, version)] = time.monotonic()
    logger.exception("Cannot load %s challenger version %s: production answers alone", model_name, version)


def challenger_get(*, model_name: str, production: ServedModel) -> ServedModel | None:
    """The model's challenger version, loaded (A/B: the first request a process routes to it waits
    for the load); None as `challenger_version_get`, or when it cannot be loaded."""
    version = challenger_version_get(model_name=model_name, production=production)
    if version is None:
        return None
    try:
        return loader().get_version(model_name, version)
    except Exception:  # any load failure: production answers, the failure is logged
        _load_failed(model_name, version)
        return None


def route_pick(*, model_name: str, production: ServedModel, request_key: str | None = None) -> Route:
    """Who answers this request, and who scores it in the shadow."""
    policy = traffic_policy_get(model_name=model_name)
    if policy.mode == TrafficMode.PRODUCTION:
        return Route(answer=production, variant=Variant.PRODUCTION)
    if policy.mode == TrafficMode.SHADOW:
        version = challenger_version_get(model_name=model_name, production=production)
        return Route(answer=production, variant=Variant.PRODUCTION, shadow_version=version)
    challenger = challenger_get(model_name=model_name, production=production)
    if challenger is None:
        return Route(answer=production, variant=Variant.PRODUCTION)
    variant = variant_pick(model_name=model_name, request_key=request_key, challenger_share=policy.challenger_share)
    return Route(answer=challenger if variant == Variant.CHALLENGER else production, variant=variant)


# --------------------------------------------------------------------------- shadow scoring


@dataclass(frozen=True)
class ShadowWork:
    """One request's rows for the challenger to score (JSON-able: the Celery runner sends it as is)."""

    model_name: str
    version: int
    records: list
    prediction_ids: list
    request_id: str
    source: str
    path: str
    created_at: str  # when production answered (ISO), so both rows carry the same time
    created_by_id: int | None = None  # who asked: the shadow row is theirs to see, like production's


def _checked(served: ServedModel, works: list[ShadowWork]) -> list[tuple[ShadowWork, list]]:
    """Each request's rows checked by the challenger's own rules: all together, or one request at a
    time when some are refused (a refused request is logged and left out)."""
    path = RulePath(works[0].path)
    table = served.rule_table()
    records = [record for work in works for record in work.records]
    try:
        rows = records_check(records=records, table=table, max_rows=len(records), path=path).rows
    except InputValidationError:
        if len(works) == 1:
            logger.warning("Shadow %s v%s refused request %s", served.name, served.version, works[0].request_id)
            return []
        return [pair for work in works for pair in _checked(served, [work])]
    pairs, start = [], 0
    for work in works:
        pairs.append((work, rows[start : start + len(work.records)]))
        start += len(work.records)
    return pairs


def shadow_rows_score(works: list[ShadowWork]) -> int:
    """Score queued requests' rows with their challenger version and store them as shadow rows.

    Requests for the same version are checked and scored together and every row goes in one
    insert; a shadow row's latency is its request's share of that work. A request the
    challenger's own rules refuse (its schema differs) is logged and skipped; returns the rows stored.
    """
    groups: dict[tuple[str, int, str], list[ShadowWork]] = {}
    for work in works:
        groups.setdefault((work.model_name, work.version, work.path), []).append(work)
    rows = []
    for (model_name, version, _), group in groups.items():
        try:
            served = loader().get_version(model_name, version)
        except Exception:  # cannot load: not offered again for a while (`challenger_version_get`)
            _load_failed(model_name, version)
            continue
        try:
            started = time.perf_counter()
            pairs = _checked(served, group)
            if not pairs:
                continue
            outputs = served.predict_records([row for _, checked in pairs for row in checked])
            latency_ms = (time.perf_counter() - started) * 1000 / len(pairs)
        except Exception:
            logger.exception("Shadow %s v%s failed on %s requests", model_name, version, len(group))
            continue
        labels = outputs.labels.tolist() if outputs.labels is not None else None
        values = outputs.values.tolist() if outputs.values is not None else None
        probabilities = outputs.probability_dicts()
        index = 0
        for work, checked in pairs:
            created_at = parse_datetime(work.created_at)
            for i, record in enumerate(checked):
                rows.append(
                    Prediction(
                        created_at=created_at,
                        model_name=served.name,
                        model_version=served.version,
                        run_id=served.run_id,
                        source=work.source,
                        request_id=work.request_id,
                        features=record,
                        predicted_label=labels[index] if labels is not None else None,
                        predicted_value=values[index] if values is not None else None,
                        probabilities=probabilities[index] if probabilities is not None else None,
                        latency_ms=latency_ms,
                        variant=Variant.SHADOW,
                        shadow_of_id=work.prediction_ids[i],
                        created_by_id=work.created_by_id,
                    )
                )
                index += 1
    if rows:
        Prediction.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


def shadow_dropped_record(counts: dict[str, int]) -> None:
    """Add dropped shadow requests to each model's counter (one UPDATE per model)."""
    for model_name, n in counts.items():
        TrafficPolicy.objects.filter(model_name=model_name).update(shadow_dropped=F("shadow_dropped") + n)


@dataclass
class ShadowStats:
    submitted: int = 0
    scored_requests: int = 0
    scored_rows: int = 0
    dropped: int = 0
    failed_batches: int = 0
    queued: int = 0


class ShadowRunner:
    """A bounded queue and one daemon worker thread per process (started on first use, and again
    after a fork). The worker gathers queued requests for up to `linger` seconds (at most
    `batch_max`), then checks, scores and stores them together: one insert per batch rather
    than per request, so the shadow costs the process (and the database) little beside production."""

    def __init__(self, *, max_queue: int, batch_max: int = 256, linger: float = 0.0):
        self.batch_max = batch_max
        self.linger = linger
        self._queue: queue.Queue[ShadowWork | None] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._dropped_unrecorded: Counter[str] = Counter()
        self._last_drop_log = 0.0
        self.stats = ShadowStats()

    def submit(self, work: ShadowWork) -> bool:
        """Queue the work without waiting; False (and counted) when the queue is full."""
        self._thread_ensure()
        try:
            self._queue.put_nowait(work)
        except queue.Full:
            with self._lock:
                self.stats.dropped += 1
                self._dropped_unrecorded[work.model_name] += 1
                now = time.monotonic()
                log = now - self._last_drop_log > 10
                if log:
                    self._last_drop_log = now
            if log:
                logger.warning(
                    "Shadow queue full (%s): dropped shadow scoring of %s", self._queue.maxsize, work.model_name
                )
            return False
        self.stats.submitted += 1
        return True

    def _thread_ensure(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="shadow-scoring", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                self._queue.task_done()
                break
            batch = [work]
            stop = False
            deadline = time.monotonic() + self.linger
            while len(batch) < self.batch_max:
                try:
                    remaining = deadline - time.monotonic()
                    more = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    self._queue.task_done()
                    break
                batch.append(more)
            try:
                close_old_connections()
                self.stats.scored_rows += shadow_rows_score(batch)
                self.stats.scored_requests += len(batch)
                with self._lock:
                    dropped, self._dropped_unrecorded = dict(self._dropped_unrecorded), Counter()
                if dropped:
                    shadow_dropped_record(dropped)
            except Exception:
                self.stats.failed_batches += 1
                logger.exception("Shadow scoring of %s requests failed", len(batch))
                connections.close_all()
            finally:
                if self._queue.empty():
                    connections.close_all()  # idle: hold no database connection (a server's, a test's)
                for _ in batch:
                    self._queue.task_done()
            if stop:
                break
        connections.close_all()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued request is scored and stored (tests, benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        with self._lock:
            dropped, self._dropped_unrecorded = dict(self._dropped_unrecorded), Counter()
        if dropped:
            shadow_dropped_record(dropped)
        return True

    def stop(self, timeout: float = 30.0) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout)
        self._thread = None

    def health(self) -> dict:
        return {**asdict(self.stats), "queued": self._queue.qsize(), "max_queue": self._queue.maxsize}


@cache
def shadow_runner() -> ShadowRunner:
    """This process's shadow runner, made on first use."""
    return ShadowRunner(max_queue=settings.MLAPP_SHADOW_QUEUE_SIZE, linger=settings.MLAPP_SHADOW_LINGER_MS / 1000)


def shadow_submit(
    route: Route,
    *,
    records: list,
    prediction_ids: list,
    request_id: str,
    source: str,
    path: str,
    created_at,
    created_by_id: int | None = None,
) -> None:
    """Hand the request's rows to the challenger, off the response path (after the production rows commit)."""
    work = ShadowWork(
        model_name=route.answer.name,
        version=route.shadow_version,
        records=records,
        prediction_ids=prediction_ids,
        request_id=request_id,
        source=str(source),
        path=str(path),
        created_at=created_at.isoformat(),
        created_by_id=created_by_id,
    )
    if settings.MLAPP_SHADOW_RUNNER == "celery":
        from .tasks import shadow_score_task  # noqa: PLC0415 (tasks import the services)

        transaction.on_commit(lambda: shadow_score_task.delay(asdict(work)))
    else:
        transaction.on_commit(lambda: shadow_runner().submit(work))


def shadow_health() -> dict:
    return {"runner": settings.MLAPP_SHADOW_RUNNER, **shadow_runner().health()}

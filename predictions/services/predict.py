"""On-demand predictions (REST API and web form): validate, score, store, answer."""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from core.errors import ApplicationError, ForbiddenError, NotFoundError
from models_registry.rules import RulePath
from models_registry.selectors import deployment_list, model_version_get
from models_registry.serving import ModelNotDeployed, ServedModel, loader

from .. import routing
from ..access import prediction_feedback_allowed, prediction_visible_q
from ..models import Prediction, Variant
from ..validation import FieldError, records_check
from .store import inference_rows_insert


@dataclass(frozen=True)
class RowPrediction:
    id: int
    prediction: object  # label (classification) or value (regression)
    probabilities: dict[str, float] | None


@dataclass(frozen=True)
class PredictionResponse:
    model_name: str
    model_version: int
    run_id: str
    request_id: str
    predictions: list[RowPrediction]
    warnings: list[FieldError]  # accepted, but worth knowing (a category unseen in training)
    variant: str = "production"  # which arm of the model's traffic policy answered (predictions/routing.py)


def served_model_get(model_name: str) -> ServedModel:
    """The version of `model_name` answering now: its `production` version.

    Raises `ModelNotDeployed` (404) naming the models that are served when it has none.
    """
    try:
        return loader().get(model_name)
    except ModelNotDeployed as exc:
        served = ", ".join(d.name for d in deployment_list()) or "none yet"
        raise ModelNotDeployed(f"{exc}: nothing to score with (served models: {served})") from exc


def predictions_make(
    *,
    model_name: str,
    records: list,
    source: str,
    request_id: str | None = None,
    served: ServedModel | None = None,
    path: RulePath = RulePath.API,
    actor=None,
    request_key: str | None = None,
    pinned: bool = False,
) -> PredictionResponse:
    """Score rows given as JSON objects with `model_name` and store one inference-log row each.

    Raises `InputValidationError` naming every bad row and field; nothing is
    stored then. ``path`` picks the model's rule policy (the web form passes ``form``); ``actor``,
    the user who asked, is recorded as the rows' maker (predictions/access.py).
    The response names the version that actually answered: production, or the challenger when
    the model's traffic policy routes this request (``request_key``) to it (`routing`).
    """
    served = served or served_model_get(model_name)
    if served.name != model_name:
        raise ValueError(f"asked for {model_name}, given a version of {served.name}")
    if pinned:  # the caller named this version (V2's /versions/<v>): it answers, whatever the traffic policy
        production = loader().version_resolve(model_name)
        route = routing.Route(
            answer=served, variant=Variant.PRODUCTION if served.version == production else Variant.CHALLENGER
        )
    else:
        route = routing.route_pick(model_name=model_name, production=served, request_key=request_key)
    served = route.answer
    started = time.perf_counter()
    checked = records_check(
        records=records, table=served.rule_table(), max_rows=settings.MLAPP_PREDICT_MAX_ROWS, path=path
    )
    cleaned, warnings = checked.rows, checked.warnings
    outputs = served.predict_records(cleaned)
    latency_ms = (time.perf_counter() - started) * 1000
    request_id = request_id or uuid.uuid4().hex
    labels = outputs.labels.tolist() if outputs.labels is not None else None
    values = outputs.values.tolist() if outputs.values is not None else None
    probabilities = outputs.probability_dicts()
    now = timezone.now()
    maker = actor.pk if actor is not None and actor.is_authenticated else None
    prediction_ids = inference_rows_insert(
        [
            {
                "created_at": now,
                "model_name": served.name,
                "model_version": served.version,
                "run_id": served.run_id,
                "source": source,
                "request_id": request_id,
                "features": record,
                "predicted_label": labels[i] if labels is not None else None,
                "predicted_value": values[i] if values is not None else None,
                "probabilities": probabilities[i] if probabilities is not None else None,
                "latency_ms": latency_ms,
                "created_by_id": maker,
                "variant": route.variant,
            }
            for i, record in enumerate(cleaned)
        ]
    )
    if route.shadow_version is not None:
        routing.shadow_submit(
            route,
            records=cleaned,
            prediction_ids=prediction_ids,
            request_id=request_id,
            source=source,
            path=path,
            created_at=now,
            created_by_id=maker,
        )
    return PredictionResponse(
        model_name=served.name,
        model_version=served.version,
        run_id=served.run_id,
        request_id=request_id,
        warnings=warnings,
        variant=route.variant,
        predictions=[
            RowPrediction(
                id=prediction_id,
                prediction=labels[i] if labels is not None else values[i],
                probabilities=probabilities[i] if probabilities is not None else None,
            )
            for i, prediction_id in enumerate(prediction_ids)
        ],
    )


class FeedbackError(ApplicationError, ValueError):
    """The outcome cannot be recorded; the message says why."""


def prediction_feedback_record(*, prediction_id: int, actual, actor=None) -> Prediction:
    """Store the actual outcome beside a prediction (for online performance).

    With an ``actor`` (the API's user), only a prediction they may see is found, and only one
    they made (or staff, or `predictions.change_prediction`) takes feedback: predictions/access.py.
    """
    prediction = Prediction.objects.filter(pk=prediction_id).first()
    if prediction is not None and actor is not None and not prediction_feedback_allowed(prediction, actor):
        visible = prediction_visible_q(actor)
        if visible is not None and not Prediction.objects.filter(visible, pk=prediction_id).exists():
            prediction = None  # someone else's: as if it did not exist
        else:
            raise ForbiddenError(
                f"Feedback on prediction {prediction_id} is for the user who made it, staff, or holders of the "
                "predictions.change_prediction permission"
            )
    if prediction is None:
        raise NotFoundError(f"No prediction {prediction_id}")
    if prediction.predicted_label is not None:  # classification
        if isinstance(actual, bool) or not isinstance(actual, (str, int)) or str(actual) == "":
            raise FeedbackError(f"actual: expected a class label (text), got {actual!r}")
        record = model_version_get(name=prediction.model_name, version=prediction.model_version)
        classes = record.training_profile.classes if record else None  # None: registered outside mlapp
        if classes and str(actual) not in classes:
            raise FeedbackError(
                f"actual: {str(actual)[:100]!r} is not a class of {prediction.model_name} "
                f"v{prediction.model_version} ({', '.join(classes)})"
            )
        prediction.actual_label, prediction.actual_value = str(actual), None
    else:
        if isinstance(actual, bool) or not isinstance(actual, (int, float)) or not math.isfinite(actual):
            raise FeedbackError(f"actual: expected a finite number, got {actual!r}")
        prediction.actual_label, prediction.actual_value = None, float(actual)
    prediction.feedback_at = timezone.now()
    prediction.save(update_fields=["actual_label", "actual_value", "feedback_at"])
    return prediction

"""Who may see which predictions and give feedback on them: the one rule (docs/security.md).

- Staff, and users granted `predictions.view_prediction` in the admin, see every prediction.
- Everyone else sees the predictions they made (web form, API, their batch jobs) and the
  scheduled ones, scored from the model's shared ingestion feed (whose files every user sees).
  Predictions of other people, and rows from before makers were recorded, they do not see.
- Feedback (the actual outcome, which online metrics and retraining read) may be given by the
  user (or that user's token) who made the prediction, by staff, and by users granted
  `predictions.change_prediction` (e.g. a labelling pipeline's account).
"""

from __future__ import annotations

from django.db.models import Q

from .models import BatchJob, Prediction, Source


def prediction_sees_all(user) -> bool:
    return bool(user.is_staff or user.has_perm("predictions.view_prediction"))


def prediction_visible_q(user) -> Q | None:
    """The filter of the predictions `user` may see; None: all of them."""
    if prediction_sees_all(user):
        return None
    own_batches = BatchJob.objects.filter(created_by_id=user.pk).values("id")
    return Q(created_by_id=user.pk) | Q(batch_job_id__in=own_batches) | Q(source=Source.SCHEDULED)


def prediction_made_by(prediction: Prediction, user) -> bool:
    if prediction.created_by_id is not None:
        return prediction.created_by_id == user.pk
    if prediction.batch_job_id is not None:
        return BatchJob.objects.filter(pk=prediction.batch_job_id, created_by_id=user.pk).exists()
    return False


def prediction_feedback_allowed(prediction: Prediction, user) -> bool:
    return bool(user.is_staff or user.has_perm("predictions.change_prediction") or prediction_made_by(prediction, user))

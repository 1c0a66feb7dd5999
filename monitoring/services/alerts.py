"""Alerts: stored once per dedup key, then sent by email and to a webhook.

Sending happens in a Celery task after the alert is committed; a failure to
send is recorded on the alert (and retried on the next delivery), never fatal
to the job that raised it.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from mlapp.task_queue import TaskQueueUnavailable, task_send

from ..models import Alert

logger = logging.getLogger(__name__)
WEBHOOK_TIMEOUT_SECONDS = 5


def alert_raise(
    *,
    kind: str,
    severity: str,
    model_name: str,
    title: str,
    message: str,
    dedup_key: str,
    ingested_file=None,
    drift_report=None,
) -> Alert | None:
    """Store an alert about `model_name` ("" for the platform) unless one with the same dedup key
    exists; returns the new alert or None. Keys name the model, so one model never mutes another."""
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                kind=kind,
                severity=severity,
                model_name=model_name,
                title=title[:255],
                message=message,
                dedup_key=dedup_key[:255],
                ingested_file=ingested_file,
                drift_report=drift_report,
            )
    except IntegrityError:
        return None  # raised before: alerts are not repeated
    from ..tasks import alert_notify_task

    def notify():
        try:
            task_send(alert_notify_task, alert.pk)
        except TaskQueueUnavailable as exc:  # the alert stands on the page; say why nobody was told
            logger.error("Alert %s not sent: %s", alert.pk, exc)
            Alert.objects.filter(pk=alert.pk).update(email_error=str(exc)[:2000], webhook_error=str(exc)[:2000])

    transaction.on_commit(notify)
    logger.warning("Alert raised: %s", title)
    return alert


def _alert_text(alert: Alert) -> str:
    return f"[mlapp {alert.severity}] {alert.title}\n{alert.message}"


def _webhook_post(url: str, alert: Alert) -> None:
    # "text" is what Slack- and Teams-style incoming webhooks display; "alert" is for programs.
    body = json.dumps(
        {
            "text": _alert_text(alert),
            "alert": {
                "id": alert.pk,
                "kind": alert.kind,
                "severity": alert.severity,
                "title": alert.title,
                "message": alert.message,
                "created_at": alert.created_at.isoformat(),
            },
        }
    ).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
        if response.status >= 300:
            raise urllib.error.HTTPError(url, response.status, "webhook refused the alert", response.headers, None)


def alert_notify(*, alert_id: int) -> Alert:
    """Send the alert on each configured channel it has not been sent on yet."""
    alert = Alert.objects.get(pk=alert_id)
    updates = {}
    recipients = settings.MLAPP_ALERT_EMAILS
    if recipients and alert.email_sent_at is None:
        try:
            send_mail(
                subject=f"[mlapp] {alert.title}"[:200],
                message=_alert_text(alert),
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=recipients,
            )
        except Exception as exc:  # SMTP errors come in many types; recorded, never fatal
            logger.warning("Alert %s: email failed: %s", alert.pk, exc)
            updates["email_error"] = f"{type(exc).__name__}: {exc}"[:1000]
        else:
            updates.update(email_sent_at=timezone.now(), email_error="")
    url = settings.MLAPP_ALERT_WEBHOOK_URL
    if url and alert.webhook_sent_at is None:
        try:
            _webhook_post(url, alert)
        except (OSError, ValueError) as exc:  # URLError/HTTPError/timeouts are OSErrors
            logger.warning("Alert %s: webhook failed: %s", alert.pk, exc)
            updates["webhook_error"] = f"{type(exc).__name__}: {exc}"[:1000]
        else:
            updates.update(webhook_sent_at=timezone.now(), webhook_error="")
    if updates:
        Alert.objects.filter(pk=alert.pk).update(**updates)
        alert.refresh_from_db()
    return alert


def alert_acknowledge(*, alert_id: int, user) -> Alert:
    Alert.objects.filter(pk=alert_id, acknowledged_at=None).update(acknowledged_at=timezone.now(), acknowledged_by=user)
    return Alert.objects.get(pk=alert_id)

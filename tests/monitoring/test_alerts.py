import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core import mail
from kombu.exceptions import OperationalError as KombuOperationalError

from monitoring.models import Alert
from monitoring.services.alerts import alert_acknowledge, alert_raise

pytestmark = pytest.mark.django_db


@pytest.fixture
def webhook_server():
    """A local Slack-style incoming webhook that records what it receives."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def _raise(key="file:abc"):
    return alert_raise(
        kind="data_quality",
        severity="error",
        model_name="m",
        title="40% bad rows in x.csv",
        message="details",
        dedup_key=key,
    )


def test_alert_is_stored_emailed_and_posted_once(settings, webhook_server, django_capture_on_commit_callbacks):
    url, received = webhook_server
    settings.MLAPP_ALERT_EMAILS = ["ops@example.com"]
    settings.MLAPP_ALERT_WEBHOOK_URL = url

    with django_capture_on_commit_callbacks(execute=True):
        first = _raise()
        again = _raise()

    first.refresh_from_db()
    assert again is None and Alert.objects.count() == 1
    assert first.email_sent_at and first.webhook_sent_at and not first.webhook_error
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ops@example.com"]
    assert len(received) == 1 and "40% bad rows" in received[0]["text"]
    assert received[0]["alert"]["severity"] == "error"


def test_failure_to_send_is_recorded_not_fatal(settings, django_capture_on_commit_callbacks):
    settings.MLAPP_ALERT_WEBHOOK_URL = "http://127.0.0.1:9/unreachable"  # discard port: nothing listens

    with django_capture_on_commit_callbacks(execute=True):
        alert = _raise()

    alert.refresh_from_db()
    assert alert.webhook_sent_at is None
    assert "Connection refused" in alert.webhook_error or "URLError" in alert.webhook_error


def test_an_alert_the_task_queue_cannot_take_still_stands_and_says_why(
    settings, django_capture_on_commit_callbacks, monkeypatch
):
    def broker_down(*args, **kwargs):
        raise KombuOperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr("monitoring.tasks.alert_notify_task.apply_async", broker_down)
    settings.MLAPP_ALERT_WEBHOOK_URL = "http://127.0.0.1:9/hook"

    with django_capture_on_commit_callbacks(execute=True):
        alert = _raise()

    alert.refresh_from_db()
    assert alert.webhook_sent_at is None and alert.email_sent_at is None
    assert (
        alert.webhook_error
        == "The task queue is unavailable: Error 111 connecting to 127.0.0.1:6379. Connection refused."
    )


def test_acknowledge(staff_user):
    alert = _raise()
    assert alert_acknowledge(alert_id=alert.pk, user=staff_user).acknowledged_by == staff_user

"""A database that accepts connections and then says nothing: every request answers 503 with
Retry-After within 2 s for the whole outage, and the same server answers 200 again once it is back.

The web server is a real gunicorn on the test's PostgreSQL database, reached through a TCP proxy
that stalls on demand (tests/integration/stall_proxy.py): new connections are accepted and then
get no byte, and so do the connections the server already holds (its persistent ones).
"""

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.conftest import requires_postgres
from tests.integration.processes import ROOT, process_env
from tests.integration.stall_proxy import StallProxy

OUTAGE_SECONDS = 8
LIMIT_SECONDS = 2.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, headers: dict) -> tuple[int, float, dict, bytes]:
    started = time.monotonic()
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, head, body = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, head, body = exc.code, dict(exc.headers), exc.read()
    return status, time.monotonic() - started, head, body


def _gunicorn(tmp_path, *, port: int, database_port: int, log) -> subprocess.Popen:
    settings_dict = connection.settings_dict
    database_url = f"postgres://{settings_dict['USER']}@127.0.0.1:{database_port}/{settings_dict['NAME']}"
    env = process_env(tmp_path, DATABASE_URL=database_url, SECRET_KEY="stall-test", DEBUG="0")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "mlapp.wsgi", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", "1", "--threads", "4", "--timeout", "120"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.2)


@dataclass
class StallFigures:
    answers: list  # (url, status, seconds, Retry-After) of every request during the outage
    recovered_after: float | None  # from the end of the outage to every URL answering 200 again
    log: str

    @property
    def slowest(self) -> float:
        return max(seconds for _, _, seconds, _ in self.answers)

    def line(self) -> str:
        statuses = sorted({status for _, status, _, _ in self.answers})
        return (
            f"{len(self.answers)} requests during the outage, statuses {statuses}, slowest {self.slowest:.2f} s; "
            f"all answering 200 again {self.recovered_after:.2f} s after it ended, without a restart"
        )


def stall_run(tmp_path, *, outage_seconds: float) -> StallFigures:
    """A real gunicorn through a stalling proxy: up, stalled for `outage_seconds`, back."""
    user = get_user_model().objects.create_user(f"stall-{time.monotonic_ns()}", password="not-used-here")
    token = Token.objects.create(user=user).key
    browser = Client()
    browser.force_login(user)  # a session row in the shared database
    session = browser.cookies["sessionid"].value
    settings_dict = connection.settings_dict
    upstream = (settings_dict["HOST"] or "127.0.0.1", int(settings_dict["PORT"] or 5432))
    port = _free_port()
    api = {"Authorization": f"Token {token}", "Accept": "application/json"}
    page = {"Cookie": f"sessionid={session}"}
    urls = [
        (f"http://127.0.0.1:{port}/api/v1/ingestion/files/", api),
        (f"http://127.0.0.1:{port}/api/v1/predictions/", api),
        (f"http://127.0.0.1:{port}/monitoring/alerts/", page),
    ]
    log = tmp_path / "gunicorn.log"
    with StallProxy(upstream=upstream) as proxy:
        server = _gunicorn(tmp_path, port=port, database_port=proxy.port, log=log)
        try:
            for url, headers in urls:  # up, with persistent connections to the database open
                assert _get(url, headers)[0] == 200, log.read_text()[-3000:]

            proxy.stall()
            answers, stalled_at = [], time.monotonic()
            while time.monotonic() - stalled_at < outage_seconds:
                for url, headers in urls:
                    status, seconds, head, _ = _get(url, headers)
                    answers.append((url, status, seconds, head.get("Retry-After")))
            proxy.resume()
            recovered, resumed_at = None, time.monotonic()
            while recovered is None and time.monotonic() - resumed_at < 10:
                if all(_get(url, headers)[0] == 200 for url, headers in urls):
                    recovered = time.monotonic() - resumed_at
        finally:
            server.terminate()
            server.wait(timeout=30)
    return StallFigures(answers=answers, recovered_after=recovered, log=log.read_text()[-3000:])


def assert_fast_503_then_recovered(figures: StallFigures, *, outage_seconds: float) -> None:
    assert {status for _, status, _, _ in figures.answers} == {503}, figures.answers
    assert all(retry == "5" for *_, retry in figures.answers), figures.answers
    assert figures.slowest < LIMIT_SECONDS, figures.answers
    assert len(figures.answers) >= outage_seconds // LIMIT_SECONDS, figures.answers
    assert figures.recovered_after is not None and figures.recovered_after < 5, figures.log


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_stalled_database_gets_a_503_within_2_s_for_the_whole_outage_and_recovers(tmp_path):
    figures = stall_run(tmp_path, outage_seconds=OUTAGE_SECONDS)

    assert_fast_503_then_recovered(figures, outage_seconds=OUTAGE_SECONDS)
    print(figures.line())

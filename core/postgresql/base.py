"""Django's PostgreSQL backend with a client side that never waits forever on the database.

A database that accepts connections and then says nothing (a stalled server, a
proxy or load balancer that holds the TCP connection) would block a request for
the whole outage: PostgreSQL's own ``statement_timeout`` is enforced by the
server, so it cannot fire when the server never sees the query, and libpq's
``connect_timeout`` has a 2 s floor. So, in every process:

- **Before a new connection**, a liveness probe: a TCP connect to the server and
  PostgreSQL's 8-byte ``SSLRequest``, to which a live server answers one byte at
  once (no authentication, nothing logged). No answer within
  ``MLAPP_DB_PROBE_SECONDS`` is an `OperationalError` (the API's and the pages'
  503 with ``Retry-After``); ``connect_timeout`` stays as the backstop.
- **While a query waits**, every ``MLAPP_DB_STALL_SECONDS`` without an answer the
  server is probed the same way: a live server means a slow query (bounded by
  ``statement_timeout``), and the wait goes on; a silent one means the database
  is stalled: the connection is dropped and the query fails with an
  `OperationalError`. A wait longer than ``statement_timeout`` plus two stall
  periods is treated as a stall too (the server should have cancelled it).
- A failed probe is remembered for ``MLAPP_DB_PROBE_SECONDS``, so the requests
  behind it fail at once instead of each waiting for its own probe.
- **Django's health check** (``CONN_HEALTH_CHECKS``: a ``SELECT 1`` before each
  request's first query) is answered without a round trip for a connection the
  server answered within ``HEALTH_CHECK_SKIP_SECONDS`` and whose socket has
  received nothing since; a server that closed it left the socket readable.

Nothing changes while the database answers: the guard costs one extra timeout
argument per wait. Settings: `mlapp/settings.py`, docs/reliability.md.
"""

from __future__ import annotations

import logging
import select
import socket
import struct
import threading
import time

import psycopg
from django.conf import settings
from django.db.backends.postgresql import base
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

logger = logging.getLogger(__name__)

# PostgreSQL's SSLRequest: length 8, code 80877103. A live server answers b"S" or b"N".
_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
_WAIT_INTERVAL = 0.1
# A connection the server answered on this recently, whose socket has received nothing since, skips
# Django's `SELECT 1` health check: pgbouncer's `server_check_delay` (30 s) and HikariCP's
# `aliveBypassWindowMs` (0.5 s) make the same bet. Far below the idle timeouts of proxies and NATs.
HEALTH_CHECK_SKIP_SECONDS = 5.0

_last_failures: dict[tuple[str, int], tuple[float, str]] = {}  # (host, port) -> (when, why)
_failure_lock = threading.Lock()


def _probe_target(params: dict) -> tuple[str, int]:
    host = params.get("host") or "localhost"
    port = int(params.get("port") or 5432)
    return host.split(",")[0], port


def database_answers(host: str, port: int, *, timeout: float) -> str | None:
    """None if the server at host:port answers an SSLRequest within `timeout`; else why not."""
    now = time.monotonic()
    with _failure_lock:
        at, message = _last_failures.get((host, port), (-1e9, ""))
        if now - at < timeout:
            return message
    family, address = (socket.AF_UNIX, f"{host}/.s.PGSQL.{port}") if host.startswith("/") else (None, (host, port))
    started = time.monotonic()
    try:
        if family is None:
            sock = socket.create_connection(address, timeout=timeout)
        else:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(address)
        with sock:
            sock.settimeout(max(timeout - (time.monotonic() - started), 0.01))
            sock.sendall(_SSL_REQUEST)
            if sock.recv(1) in (b"S", b"N"):
                return None
            problem = "answered the probe with something that is not PostgreSQL"
    except TimeoutError:
        problem = f"did not answer within {timeout:g} s"
    except OSError as exc:
        problem = f"cannot be reached ({exc.strerror or exc})"
    message = f"the database at {host}:{port} {problem}"
    with _failure_lock:
        _last_failures[(host, port)] = (time.monotonic(), message)
    return message


class GuardedConnection(psycopg.Connection):
    """A psycopg connection whose waits for the server give up when the server is stalled."""

    _mlapp_probe_target: tuple[str, int] = ("localhost", 5432)

    _mlapp_answered_at: float = -1e9  # time.monotonic() of the server's last answer on this connection

    def wait(self, gen, interval: float = _WAIT_INTERVAL, timeout: float | None = None):
        result = self._guarded_wait(gen, interval, timeout)
        self._mlapp_answered_at = time.monotonic()
        return result

    def _guarded_wait(self, gen, interval: float, timeout: float | None):
        stall = settings.MLAPP_DB_STALL_SECONDS
        if timeout is not None or not stall:
            return super().wait(gen, interval=interval, timeout=timeout)
        statement = settings.MLAPP_DB_STATEMENT_TIMEOUT_SECONDS
        limit = statement + 2 * stall if statement else None
        waited = 0.0
        while True:
            try:
                return super().wait(gen, interval=interval, timeout=stall)
            except pg_errors._WaitTimeout:
                waited += stall
                problem = database_answers(*self._mlapp_probe_target, timeout=settings.MLAPP_DB_PROBE_SECONDS)
                if problem is None and (limit is None or waited < limit):
                    continue  # a slow query on a live server: statement_timeout bounds it
                problem = problem or f"gave no answer for {waited:g} s, past statement_timeout"
                logger.error("Dropping a database connection: %s", problem)
                self.pgconn.finish()
                raise psycopg.OperationalError(f"{problem} (no answer to a query for {waited:g} s)") from None

    def quiet_and_recent(self) -> bool:
        """Idle, answered within `HEALTH_CHECK_SKIP_SECONDS`, and nothing has arrived since.

        An idle connection in autocommit receives nothing from a server that is still there. A server
        that closed it (a restart, `pg_terminate_backend`, `idle_session_timeout`, a proxy) sent its
        FATAL message and end-of-stream first, so its socket is readable: asking the socket is a
        system call, not a round trip.
        """
        if self.closed or self.broken or self.info.transaction_status != TransactionStatus.IDLE:
            return False
        if time.monotonic() - self._mlapp_answered_at >= HEALTH_CHECK_SKIP_SECONDS:
            return False
        try:
            readable, _, _ = select.select([self.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable


class _GuardedDatabase:
    """The psycopg module as Django's backend uses it, connecting through `GuardedConnection`."""

    def __getattr__(self, name):
        return getattr(psycopg, name)

    @staticmethod
    def connect(**params):
        target = _probe_target(params)
        problem = database_answers(*target, timeout=settings.MLAPP_DB_PROBE_SECONDS)
        if problem is not None:
            raise psycopg.OperationalError(problem)
        connection = GuardedConnection.connect(**params)
        connection._mlapp_probe_target = target
        return connection


class DatabaseWrapper(base.DatabaseWrapper):
    Database = _GuardedDatabase()

    def is_usable(self):
        """Django's health check (`CONN_HEALTH_CHECKS`: a `SELECT 1` before each request's first query)
        without its round trip for a connection that answered moments ago and has heard nothing since
        (`GuardedConnection.quiet_and_recent`). Under load that round trip cost as much as a predict
        request's INSERT (bench/README.md). A connection idle for longer still gets the `SELECT 1`: a
        firewall or NAT that forgets a connection tells neither end.
        """
        if self.connection is not None and self.connection.quiet_and_recent():
            return True
        return super().is_usable()

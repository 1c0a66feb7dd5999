"""Django's connection health check through our backend (core/postgresql/base.py): no round trip for
a connection that answered moments ago and has heard nothing since; a connection the server closed is
still found, and replaced before the next query."""

import select

import psycopg
import pytest
from django.db import connection, connections

from core.postgresql.base import HEALTH_CHECK_SKIP_SECONDS
from tests.conftest import requires_postgres

pytestmark = [requires_postgres, pytest.mark.django_db]


@pytest.fixture
def own_connection():
    """A connection of its own, in autocommit (the test's default connection is inside a transaction,
    where Django's check always asks the server)."""
    wrapper = connections.create_connection("default")
    wrapper.ensure_connection()
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        wrapper.backend_pid = cursor.fetchone()[0]
    yield wrapper
    wrapper.close()


@pytest.fixture
def statements_sent(monkeypatch):
    sent = []
    execute = psycopg.Cursor.execute

    def recording(self, query, *args, **kwargs):
        sent.append(str(query))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", recording)
    return sent


def _until_readable(wrapper, timeout=2.0):
    """The server's FATAL message and end-of-stream reach the socket a moment after the kill (well
    inside the window, so what finds the closed connection is the socket, not the window's end)."""
    readable = select.select([wrapper.connection.fileno()], [], [], timeout)[0]
    assert readable, "the server did not close the connection"


def test_a_connection_that_just_answered_is_usable_without_a_round_trip(own_connection, statements_sent):
    assert own_connection.is_usable() is True
    assert statements_sent == []


def test_a_connection_idle_past_the_window_is_asked(own_connection, statements_sent):
    own_connection.connection._mlapp_answered_at -= HEALTH_CHECK_SKIP_SECONDS

    assert own_connection.is_usable() is True
    assert statements_sent == ["SELECT 1"]


def test_a_connection_the_server_closed_is_found_and_replaced(own_connection):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [own_connection.backend_pid])
    _until_readable(own_connection)

    assert own_connection.connection.quiet_and_recent() is False
    assert own_connection.is_usable() is False
    own_connection.health_check_done = False
    own_connection.close_if_health_check_failed()  # what Django runs before a request's first query
    assert own_connection.connection is None
    with own_connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != own_connection.backend_pid

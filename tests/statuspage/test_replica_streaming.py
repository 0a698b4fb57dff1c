"""The replica's lag, measured on a real PostgreSQL streaming replica (tests/postgres_pair.py:
a private primary and a standby made from it with `pg_basebackup -R`)."""

import time

import psycopg
import pytest
from django.db import connections

from components.models import Component
from statuspage import db_router
from statuspage.lib.replica import reading_from_replica
from tests.postgres_pair import Cluster, primary_and_standby
from tests.statuspage.replica_alias import replica_alias_as

REPLICA = db_router.REPLICA


@pytest.fixture(scope="module")
def pair():
    with primary_and_standby("beacon-replica-") as clusters:
        yield clusters


@pytest.fixture
def replica(pair, settings, django_db_blocker, monkeypatch):
    """The "replica" alias on the standby, as DATABASE_REPLICA_URL would make it."""
    primary, standby = pair
    monkeypatch.setattr(db_router, "DELIVERY_MARGIN_SECONDS", 0.0)  # replayed is replayed
    alias = {
        **connections.settings["default"],
        "NAME": "postgres",
        "HOST": "127.0.0.1",
        "PORT": standby.port,
        "USER": "postgres",
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"connect_timeout": 2},
        "TEST": {"MIRROR": "default"},
    }
    settings.BEACON_REPLICA_MAX_LAG_SECONDS = 1.0
    settings.BEACON_REPLICA_CHECK_SECONDS = 0.0  # measure at every look
    settings.BEACON_REPLICA_RETRY_SECONDS = 0.0
    db_router.forget_state()
    with django_db_blocker.unblock(), replica_alias_as(alias):
        yield primary, standby
    db_router.forget_state()


def _write(primary: Cluster) -> float:
    """Commit something on the primary; returns when (before the commit)."""
    at = time.time()
    with primary.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS beats (at float)")
        conn.execute("INSERT INTO beats VALUES (%s)", [at])
    return at


def _replayed(standby: Cluster, at: float) -> bool:
    """Whether the standby has replayed the write made at `at`."""
    try:
        with standby.connect() as conn:
            return conn.execute("SELECT 1 FROM beats WHERE at = %s", [at]).fetchone() is not None
    except psycopg.Error:
        return False  # not even the table yet


def _caught_up(standby: Cluster, at: float) -> None:
    _until(lambda: _replayed(standby, at) and db_router.measure().lag == 0.0)


def _until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the standby did not get there in time"
        time.sleep(0.05)


def test_a_standby_that_replayed_everything_lags_zero_and_is_current(replica):
    primary, standby = replica
    written = _write(primary)
    _caught_up(standby, written)
    found = db_router.measure()
    assert found.reachable
    assert found.replayed_until >= written
    assert db_router.replica_is_current(written)


def test_a_standby_whose_replay_is_paused_lags_and_is_left_for_the_primary(replica):
    primary, standby = replica
    _caught_up(standby, _write(primary))
    with standby.connect() as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        try:
            _write(primary)
            time.sleep(0.3)
            second = _write(primary)  # received, not replayed
            time.sleep(1.3)
            found = db_router.measure()
            # The age of the last commit it replayed: the first write's, at least 1.3 s ago.
            assert found.lag is not None and found.lag >= 1.3
            assert found.replayed_until < second
            assert not db_router.replica_is_current(0.0)  # past DATABASE_REPLICA_MAX_LAG_SECONDS
        finally:
            conn.execute("SELECT pg_wal_replay_resume()")
    _until(lambda: db_router.measure().lag == 0.0)
    assert db_router.replica_is_current(second)


def test_a_standby_under_the_limit_still_waits_for_the_last_change(replica, settings):
    primary, standby = replica
    settings.BEACON_REPLICA_MAX_LAG_SECONDS = 60.0
    _caught_up(standby, _write(primary))
    with standby.connect() as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        try:
            time.sleep(0.2)
            _write(primary)
            changed = time.time()  # a public change after the write
            time.sleep(0.3)
            assert db_router.measure().lag is not None  # lagging, under the limit
            assert not db_router.replica_is_current(changed)
        finally:
            conn.execute("SELECT pg_wal_replay_resume()")
    _until(lambda: db_router.replica_is_current(changed))


def test_a_stopped_standby_is_unreachable_and_found_again(replica):
    _primary, standby = replica
    assert db_router.state().reachable
    standby.stop()
    try:
        connections[REPLICA].close()
        db_router.forget_state()
        assert not db_router.state().reachable
        assert not db_router.replica_is_current(0.0)
    finally:
        standby.start()
    _until(lambda: db_router.state().reachable)


def test_a_standby_stopped_after_the_check_is_not_read(replica, settings):
    primary, standby = replica
    _caught_up(standby, _write(primary))
    settings.BEACON_REPLICA_CHECK_SECONDS = 60.0
    settings.BEACON_REPLICA_RETRY_SECONDS = 60.0
    router = db_router.ReplicaRouter()
    with reading_from_replica():
        assert router.db_for_read(Component) == REPLICA  # and its connection is kept open
    standby.stop()
    try:
        connections[REPLICA].health_check_done = False  # a new request
        with reading_from_replica():
            assert router.db_for_read(Component) is None
        assert not db_router.state().reachable
    finally:
        standby.start()

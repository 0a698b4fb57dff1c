"""The replica's lag, measured on a real PostgreSQL streaming replica.

The machine's PostgreSQL does not allow replication connections (pg_hba.conf has no
`replication` entry), so this module starts a pair of its own: a small primary in a temporary
directory, and a standby made from it with `pg_basebackup -R`, both on free ports with trust
authentication. Skipped where PostgreSQL's server binaries, or a `postgres` user to run them
as, are not there.
"""

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from django.db import connections

from components.models import Component
from statuspage import db_router
from statuspage.lib.replica import reading_from_replica
from tests.statuspage.replica_alias import replica_alias_as

REPLICA = db_router.REPLICA
BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """One PostgreSQL server of the pair, run as the postgres user."""

    def __init__(self, data: Path, port: int):
        self.data, self.port = data, port

    def run(self, *command: str) -> None:
        prefix = [] if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--"]
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        # A log file, or the server would hold the output pipe open and run() never return.
        log = str(self.data.parent / f"{self.data.name}.log")
        self.run(str(BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self.run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        )


@pytest.fixture(scope="module")
def pair():
    if not (BIN / "pg_ctl").exists() or not shutil.which("runuser"):
        pytest.skip(f"PostgreSQL's server binaries are not in {BIN}")
    try:
        postgres = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres user to run a PostgreSQL server as")
    root = Path(tempfile.mkdtemp(prefix="beacon-replica-"))
    os.chown(root, postgres.pw_uid, postgres.pw_gid)
    primary = Cluster(root / "primary", _free_port())
    standby = Cluster(root / "standby", _free_port())
    started: list[Cluster] = []
    try:
        primary.run(str(BIN / "initdb"), "-D", str(primary.data), "-U", "postgres", "-A", "trust")
        with (primary.data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")
        started.append(primary)
        primary.start()
        primary.run(
            str(BIN / "pg_basebackup"),
            *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"),
            *("-D", str(standby.data), "-R", "-X", "stream", "-c", "fast"),
        )
        started.append(standby)
        standby.start()
        yield primary, standby
    finally:
        for cluster in reversed(started):
            with contextlib.suppress(Exception):
                cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


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

"""A private PostgreSQL primary and its streaming standby, for tests of replicas and regions.

The machine's PostgreSQL does not allow replication connections (pg_hba.conf has no
`replication` entry), so the tests start a pair of their own: a small primary in a temporary
directory, and a standby made from it with `pg_basebackup -R`, both on free ports with trust
authentication, run as the postgres user. Skipped where PostgreSQL's server binaries, or a
`postgres` user to run them as, are not there.
"""

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.nginx import free_port

BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


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

    def stop(self, mode: str = "fast") -> None:
        self.run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def promote(self) -> None:
        self.run(str(BIN / "pg_ctl"), "-D", str(self.data), "-w", "promote")

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True
        )

    def url(self, dbname: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"


@contextlib.contextmanager
def primary_and_standby(prefix: str) -> Iterator[tuple[Cluster, Cluster]]:
    """A running primary and a standby streaming from it; both stopped and removed after."""
    if not (BIN / "pg_ctl").exists() or not shutil.which("runuser"):
        pytest.skip(f"PostgreSQL's server binaries are not in {BIN}")
    try:
        postgres = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres user to run a PostgreSQL server as")
    root = Path(tempfile.mkdtemp(prefix=prefix))
    os.chown(root, postgres.pw_uid, postgres.pw_gid)
    primary = Cluster(root / "primary", free_port())
    standby = Cluster(root / "standby", free_port())
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
                cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)

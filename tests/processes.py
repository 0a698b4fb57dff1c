"""Beacon's own processes (gunicorn, the follower) run beside a test, on its database."""

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection

from statuspage.db_router import REPLICA

ROOT = Path(__file__).resolve().parents[1]


def database_url() -> str:
    """DATABASE_URL of the test database, for a process started by a transactional test."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def database_env() -> dict[str, str]:
    """The database variables of such a process: DATABASE_URL, and with DATABASE_REPLICA_URL
    set for the suite, a replica URL on the test database too, as the test's own mirror is
    (the inherited one names a database the test does not use)."""
    url = database_url()
    replica = {"DATABASE_REPLICA_URL": url} if REPLICA in settings.DATABASES else {}
    return {"DATABASE_URL": url, **replica}


@contextmanager
def process(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """Runs `command` in the repository with its output in `log`; SIGTERM (then SIGKILL) after."""
    with log.open("wb") as out:
        running = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=out)
        try:
            yield running
        finally:
            if running.poll() is None:
                running.send_signal(signal.SIGTERM)
                try:
                    running.wait(10)
                except subprocess.TimeoutExpired:
                    running.kill()
                    running.wait()


def wait_until_answering(url: str, seconds: float = 30) -> None:
    """Returns once `url` answers anything; fails the test after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"{url} did not answer")


def within(seconds: float, check: Callable[[], bool]) -> float:
    """How long `check` took to come true (polled every 50 ms), or -1.0 if it did not."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    return -1.0

"""Beacon's own processes (gunicorn, the follower) run beside a test, on its database."""

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def database_url() -> str:
    """DATABASE_URL of the test database, for a process started by a transactional test."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


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

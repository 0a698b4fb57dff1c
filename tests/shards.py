"""Run the whole suite as two pytest processes side by side (`make test`).

With PostgreSQL and Redis (DATABASE_URL and REDIS_URL set) much of a test's time is spent
waiting on them and on the servers and workers tests start, so two processes on a two-core
machine finish the suite in much less time than one. Each shard is a suite of its own: its
own PostgreSQL database (the test database pytest-django makes from it), its own Redis
database (so the Celery broker's queues are its own), its own var directory. Nothing is
shared but the servers.

Given pytest arguments, or without PostgreSQL and Redis, this runs one pytest as before.
"""

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent

# The public surface's tests up to test_sm… in one shard, everything else in the other: about
# equal shares of the suite's time (and of its slow tests: servers, nginx, failovers, Chromium).
SPLIT_AT = "test_sn"


def shards() -> dict[str, list[str]]:
    surface = sorted((ROOT / "tests" / "statuspage").glob("test_*.py"))
    first = [str(path.relative_to(ROOT)) for path in surface if path.name < SPLIT_AT]
    return {
        "tests/statuspage up to test_sm…": first,
        "the rest": ["tests", *(f"--ignore={path}" for path in first)],
    }


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _with_redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


def _ensure_database(url: str) -> None:
    """The shard's database must exist for Django to start; its test database is pytest's."""
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(_with_database(url, "postgres"), autocommit=True) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if found.fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')


def _shard_env(index: int) -> dict[str, str]:
    env = dict(os.environ)
    base = urlsplit(env["DATABASE_URL"]).path.lstrip("/") or "beacon"
    database = _with_database(env["DATABASE_URL"], f"{base}_shard{index}")
    _ensure_database(database)
    env["DATABASE_URL"] = database
    if env.get("DATABASE_REPLICA_URL"):
        env["DATABASE_REPLICA_URL"] = database
    redis_db = int(urlsplit(env["REDIS_URL"]).path.lstrip("/") or 0) + index
    env["REDIS_URL"] = _with_redis_db(env["REDIS_URL"], redis_db)
    var_dir = Path(env.get("BEACON_VAR_DIR", ROOT / "var" / "test")) / f"shard{index}"
    var_dir.mkdir(parents=True, exist_ok=True)
    env["BEACON_VAR_DIR"] = str(var_dir)
    return env


def main(arguments: list[str]) -> int:
    pytest = [str(Path(sys.executable).with_name("pytest"))]
    if arguments or not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        return subprocess.call([*pytest, *arguments], cwd=ROOT)
    started = time.monotonic()
    running = []
    for index, (name, paths) in enumerate(shards().items()):
        env = _shard_env(index)
        log = Path(env["BEACON_VAR_DIR"]) / "pytest.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*pytest, *paths], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        running.append((name, process, log))
        print(f"shard {index} ({name}): output in {log}", flush=True)
    worst = 0
    for name, process, log in running:
        code = process.wait()
        print(f"\n===== shard {name}: exit {code} =====", flush=True)
        sys.stdout.write(log.read_text(errors="replace"))
        worst = worst or code
    print(f"\nAll shards done in {time.monotonic() - started:.0f} s; exit {worst}.", flush=True)
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

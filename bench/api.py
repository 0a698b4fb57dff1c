"""The management API v1 under load, side by side with the same bytes served from memory.

    .venv/bin/python bench/api.py [--duration 5] [--rounds 3] [--write-duration 10] [--quick]

Creates a database (beacon_bench_api, dropped at the end and again at the next start) with a
realistic page: 50 components in 5 groups with 90 days of daily uptime and 1,000 past
incidents (bench/seed.py, bulk_create), each given 2 to 4 updates; 5 open incidents and an
upcoming maintenance made through incidents.services; 500 subscribers; a superuser and an
API key from statuspage.api_v1.keys.api_key_create. Then, all at once:

- Beacon as bench/run.py starts it for production (SERVERS["granian-w3-bt1"], the command
  docs/deployment.md recommends) on PostgreSQL and Redis, with API_RATE_LIMIT_PER_MINUTE=0
  (no limit: statuspage.lib.ratelimit returns before it asks Redis anything), and a second
  Beacon with a limit of 10^9, which is never reached but counted in Redis on every request;
  one Celery worker (bench/run.py's WORKER_CMD) rebuilds the public snapshots after writes;
- the reference: bench/minimal_app.py under the same server command, serving the bytes
  Beacon answered for each endpoint from memory.

Reads: `wrk -t2 -c16` and `-c64` with `Authorization: OAuth <key>` on five GET endpoints,
--duration seconds on Beacon and 2 on the reference, interleaved per round (Beacon, Beacon
with the limiter at 16 connections only, the reference; each run starts once the servers
have worked off the last one's queue), medians of the rounds.

Writes, 4 client threads for --write-duration seconds each: PATCH each its own component's
status back and forth; post updates (PATCH with a status and a body, as Statuspage clients
do) to each its own open incident, opened before; open (POST) and resolve (PATCH) incidents.
Timed as writes only; then the three loads again for half as long, each write followed by a
GET of the list that shows it, counting a read that does not as a violation
(--no-read-after-write: skip that pass). Afterwards the API and /api/v2 must show
the last writes and no request may have failed.

Profile: one `GET /incidents?limit=100` in-process through statuspage.wsgi.application (the
servers' entry point), warm and cold (the first after a write, and after a bare generation
bump when statuspage.api_v1.generation has one): wall time, queries and their time, Redis
commands and their time, model instances, and cProfile's top functions. Nothing of Beacon's
is wrapped, so the profile survives its functions being renamed.

Then issue 20's targets, each measured and met or not; the report quotes the run before the
issue's work (2026-12-04, commit 1f19d0c) beside this one. Exits 1 when a request failed, a
check did not hold or a target was missed (after writing the results).

Results: bench/results/api-<time>.json and the section of docs/performance.md between the
bench:api markers. Uses Redis db 6 (flushed at the start and the end; bench/checks.py uses it
too, so do not run both at once) and ports 18122-18124.
"""

import argparse
import contextlib
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import redis
from checks import cpu_seconds
from run import (
    BENCH,
    BIN,
    DOC,
    HOST,
    RESULTS_DIR,
    ROOT,
    SERVERS,
    WORKER_CMD,
    Processes,
    beacon_env,
    http_get,
    loadavg,
    log,
    machine,
    manage_shell,
    median_result,
    pg_execute,
    run_cmd,
    run_seed,
    wait_http,
    wrk_argv,
    wrk_env,
    wrk_result,
)

DB = "beacon_bench_api"
REDIS_DB = 6
# 18120-18121 are bench/notify.py's SMTP servers: this one takes the next three.
PORT_BEACON, PORT_LIMITED, PORT_MINIMAL = 18122, 18123, 18124
DEFAULT_SERVER = "granian-w3-bt1"
HUGE_LIMIT = 10**9
DOC_START = "<!-- bench:api:start -->"
DOC_END = "<!-- bench:api:end -->"
CONNECTIONS = (16, 64)
WRITE_THREADS = 4
COMPONENTS, INCIDENTS, SUBSCRIBERS = 50, 1000, 500

# name: (path under /api/v1/pages/{page}, query string)
ENDPOINTS = {
    "components": ("/components", ""),
    "incidents": ("/incidents", "limit=100"),
    "unresolved": ("/incidents/unresolved", ""),
    "subscribers": ("/subscribers", "limit=100"),
    "uptime": ("/components/{component}/uptime", ""),
}

SEED_CODE = """
import json, random, time
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from datetime import timedelta
from components.models import Component, ComponentStatus
from incidents.models import Incident, IncidentStatus, IncidentUpdate
from incidents.notify.models import Channel, Subscriber, SubscriberState
from incidents.services import incident_create
from statuspage.api_v1.keys import api_key_create
from statuspage.models import PageSettings

subscribers = %d
rng = random.Random(7)
began = time.monotonic()
now = timezone.now()

# bench/seed.py gives each past incident two updates (investigating, resolved): add none,
# one or two in between, so the history has 2 to 4 updates per incident.
MIDDLE = [
    (IncidentStatus.IDENTIFIED, "We found the cause and are working on a fix."),
    (IncidentStatus.MONITORING, "A fix is out. We are watching error rates recover."),
]
past = list(Incident.objects.filter(status=IncidentStatus.RESOLVED))
updates, monitored = [], []
for incident in past:
    extra = rng.randint(0, 2)
    span = incident.resolved_at - incident.started_at
    for k in range(extra):
        status, body = MIDDLE[k] if extra == 2 else MIDDLE[rng.randint(0, 1)]
        at = incident.started_at + span * (k + 1) / (extra + 1)
        updates.append(IncidentUpdate(
            incident=incident, status=status, body=body, display_at=at, created_at=at,
            updated_at=at, deliver_notifications=False,
        ))
        if status == IncidentStatus.MONITORING:
            incident.monitoring_at = at
            monitored.append(incident)
IncidentUpdate.objects.bulk_create(updates, batch_size=5000)
Incident.objects.bulk_update(monitored, ["monitoring_at"], batch_size=5000)

# bench/seed.py opened two incidents and scheduled a maintenance; three more are open.
components = list(Component.objects.in_page_order())
for n, (name, status, bad) in enumerate([
    ("Checkout errors", IncidentStatus.INVESTIGATING, ComponentStatus.MAJOR_OUTAGE),
    ("Slow search results", IncidentStatus.IDENTIFIED, ComponentStatus.DEGRADED_PERFORMANCE),
    ("Login failures for some users", IncidentStatus.MONITORING, ComponentStatus.PARTIAL_OUTAGE),
]):
    incident_create(
        name=name, status=status, body="We are looking into it.",
        component_statuses={components[20 + 10 * n]: bad},
        deliver_notifications=False, started_at=now - timedelta(minutes=30 + 20 * n),
    )

# Subscribers: most to everything, some to a few components, some not (yet) sending.
plan = (
    [(SubscriberState.ACTIVE, None)] * (subscribers * 80 // 100)
    + [(SubscriberState.ACTIVE, 3)] * (subscribers * 10 // 100)
    + [(SubscriberState.UNCONFIRMED, None)] * (subscribers * 6 // 100)
)
plan += [(SubscriberState.QUARANTINED, None)] * (subscribers - len(plan))
made = Subscriber.objects.bulk_create(
    Subscriber(
        channel=Channel.EMAIL, email=f"person{n}@example.com", all_components=chosen is None,
        state=state, created_at=now - timedelta(minutes=n),
        confirmed_at=None if state == SubscriberState.UNCONFIRMED else now,
        quarantined_at=now if state == SubscriberState.QUARANTINED else None,
    )
    for n, (state, chosen) in enumerate(plan)
)
Through = Subscriber.components.through
Through.objects.bulk_create(
    Through(subscriber_id=s.pk, component_id=c.pk)
    for s, (_, chosen) in zip(made, plan) if chosen
    for c in rng.sample(components, chosen)
)

owner = get_user_model().objects.create_superuser("bench", "bench@example.com", None)
key, raw = api_key_create(owner=owner, name="bench/api.py")
with connection.cursor() as cursor:
    cursor.execute("ANALYZE")
print("BENCHJSON " + json.dumps({
    "page_id": PageSettings.load().public_id,
    "key": raw,
    "components": [c.public_id for c in components],
    "counts": {
        "components": len(components),
        "groups": len({c.group_id for c in components if c.group_id}),
        "incidents": Incident.objects.incidents().count(),
        "unresolved": Incident.objects.unresolved().count(),
        "maintenances": Incident.objects.maintenances().count(),
        "updates": IncidentUpdate.objects.count(),
        "subscribers": Subscriber.objects.count(),
        "active_subscribers": Subscriber.objects.filter(state=SubscriberState.ACTIVE).count(),
    },
    "seconds": time.monotonic() - began,
}))
"""

# One GET at a time through statuspage.wsgi.application, the entry point the servers load, so
# whatever answers before Django (a fast path) counts as it does under load. Nothing of ours is
# wrapped: the database is measured through Django's execute wrappers on every connection,
# Redis at redis-py's client class, the rest by cProfile. Warm requests repeat one GET; a cold
# one is the first GET after a write (an update posted to an open incident through the same
# application, as a client does) and, when the module is there, after a bare
# statuspage.api_v1.generation.bump().
PROFILE_CODE = r"""
import contextlib, cProfile, importlib, io, json, pstats, statistics, sys, time
from collections import defaultdict
from pathlib import Path

import redis.client
from django.db import connections
from django.db.models import Model

from statuspage.wsgi import application

BASE, QUERY, KEY, REPEATS, COLD, ROOT = %r, %r, %r, %d, %d, %r
PATH = BASE + "/incidents"


def call(method="GET", path=PATH, query=QUERY, body=b""):
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "HTTP_AUTHORIZATION": "OAuth " + KEY, "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http", "wsgi.version": (1, 0),
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    seen = []
    response = application(environ, lambda status, headers, exc_info=None: seen.append(status))
    try:
        out = b"".join(response)
    finally:
        if hasattr(response, "close"):
            response.close()  # request_finished, as a server does
    return seen[0], out


counts = defaultdict(float)


def in_database(execute, sql, params, many, context):
    began = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        counts["db_s"] += time.perf_counter() - began
        counts["queries"] += 1


def timed_redis(original, commands):
    def wrapper(self, *args, **kwargs):
        n = commands(self, args)
        began = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            counts["redis_s"] += time.perf_counter() - began
            counts["redis_round_trips"] += 1
            counts["redis_commands"] += n
    return wrapper


# A pipeline queues its commands in execute_command and sends them in execute(): one round
# trip each, counted there; commands of a plain client are counted one by one.
Pipeline = redis.client.Pipeline
redis.client.Redis.execute_command = timed_redis(redis.client.Redis.execute_command,
                                                 lambda self, args: 1)
Pipeline.execute = timed_redis(Pipeline.execute,
                               lambda self, args: len(getattr(self, "command_stack", ())) or 1)

built = defaultdict(int)
from_db = Model.from_db.__func__


def counted(cls, db, field_names, values):
    built[cls.__name__] += 1
    return from_db(cls, db, field_names, values)


def measured(request):
    counts.clear()
    built.clear()
    Model.from_db = classmethod(counted)
    began = time.perf_counter()
    try:
        status, body = request()
    finally:
        wall = time.perf_counter() - began
        Model.from_db = classmethod(from_db)
    return status, body, {
        "wall_ms": wall * 1000, "queries": int(counts["queries"]),
        "database_ms": counts["db_s"] * 1000, "redis_commands": int(counts["redis_commands"]),
        "redis_round_trips": int(counts["redis_round_trips"]),
        "redis_ms": counts["redis_s"] * 1000, "instances": dict(built),
    }


def place(filename):
    if filename.startswith(ROOT + "/") and "/site-packages/" not in filename:
        return filename[len(ROOT) + 1:]
    if "/site-packages/" in filename:
        return filename.split("/site-packages/", 1)[1]
    return Path(filename).name if filename != "~" else ""


def top(profiler, requests):
    # tottime: where the time itself goes; cumulative for our own code: what leads to it.
    stats = pstats.Stats(profiler).stats
    # A function that spends nearly all its time in one Python callee (a middleware, a
    # decorator, the entry point) only passes the request on: marked, to leave it out of the
    # listing. A callee in C (a builtin, "~") is work done, not passed on.
    passes = set()
    for function, (cc, nc, tt, ct, callers) in stats.items():
        if function[0] == "~":
            continue
        for caller, (_, _, _, via) in callers.items():
            whole = stats[caller][3] if caller in stats else 0
            if whole and via >= 0.95 * whole:
                passes.add(caller)
    rows = [
        {"function": f"{place(filename)}:{line}({name})",
         "own": filename.startswith(ROOT + "/") and "/site-packages/" not in filename,
         "passes_on": (filename, line, name) in passes,
         "tottime_ms": tt * 1000 / requests, "cumtime_ms": ct * 1000 / requests,
         "calls": nc / requests}
        for (filename, line, name), (cc, nc, tt, ct, callers) in stats.items()
    ]
    by_tottime = sorted(rows, key=lambda r: -r["tottime_ms"])[:25]
    own = sorted((r for r in rows if r["own"] and not r["passes_on"]),
                 key=lambda r: -r["cumtime_ms"])[:25]
    return by_tottime, own


def post_update(incident, n):
    status = ("identified", "monitoring")[n %% 2]
    body = json.dumps({"incident": {"status": status, "body": f"Profile update {n}.",
                                    "deliver_notifications": False}}).encode()
    answer, _ = call("PATCH", f"{BASE}/incidents/{incident}", "", body)
    assert answer.startswith("200"), answer


def bump_generation():
    module = importlib.import_module("statuspage.api_v1.generation")
    module.bump()


with contextlib.ExitStack() as stack:
    for connection in connections.all():
        stack.enter_context(connection.execute_wrapper(in_database))

    for _ in range(10):  # connections, imports, caches
        status, body = call()
    assert status.startswith("200"), status
    warm = [measured(call)[2] for _ in range(REPEATS)]
    warm_body = call()[1]

    profiler = cProfile.Profile()
    profiled = max(10, REPEATS // 2)
    began = time.perf_counter()
    profiler.enable()
    for _ in range(profiled):
        call()
    profiler.disable()
    profiled_wall = (time.perf_counter() - began) / profiled
    warm_top, warm_own = top(profiler, profiled)

    # The open incident to post updates to: one of the seeded ones, never a maintenance.
    unresolved = json.loads(call(path=BASE + "/incidents/unresolved", query="")[1])
    incident = next(i["id"] for i in unresolved
                    if i["status"] in ("investigating", "identified", "monitoring"))
    cold, cold_bodies = [], []
    cold_profiler = cProfile.Profile()
    for n in range(COLD):
        post_update(incident, n)
        cold_profiler.enable()
        status, cold_body, sample = measured(call)
        cold_profiler.disable()
        assert status.startswith("200"), status
        cold.append(sample)
        cold_bodies.append(cold_body)
    cold_top, cold_own = top(cold_profiler, max(COLD, 1))
    after_write_warm = measured(call)
    # Nothing changed since the last cold GET: the next answer must be the same bytes.
    same_after_cold = after_write_warm[1] == cold_bodies[-1] if cold_bodies else None

    bumped, bump_error = [], None
    try:
        bump_generation()
    except (ImportError, AttributeError) as error:
        bump_error = repr(error)
    else:
        for _ in range(COLD):
            bump_generation()
            bumped.append(measured(call)[2])

print("BENCHJSON " + json.dumps({
    "status": status, "bytes": len(warm_body), "repeats": REPEATS, "warm": warm,
    "cold_after_write": cold, "cold_after_bump": bumped, "bump_error": bump_error,
    "warm_after_cold": after_write_warm[2], "same_bytes_after_cold": same_after_cold,
    "profiled_requests": profiled, "profiled_wall_ms": profiled_wall * 1000,
    "warm_top": warm_top, "warm_own": warm_own, "cold_top": cold_top, "cold_own": cold_own,
    "cold_profiled_requests": COLD,
}))
"""


# --- reads ---------------------------------------------------------------------------------


def wrk_api(url: str, connections: int, duration: int, key: str) -> dict:
    argv = wrk_argv(url, connections, duration)
    argv[-1:-1] = ["-H", f"Authorization: OAuth {key}"]
    # A list of 100 incidents at 64 connections waits seconds in the queue: count it, do
    # not cut it off at wrk's 5 s (a timed-out request has no latency in wrk's numbers).
    argv[argv.index("--timeout") + 1] = "30s"
    result = wrk_result(run_cmd(argv, env=wrk_env(True), timeout=duration + 60))
    result["non_2xx"] = sum(n for code, n in result["codes"].items() if not 200 <= code < 300)
    result["command"] = shlex.join(argv).replace(key, "<key>")
    return result


def merged(results: list[dict]) -> dict:
    out = median_result(results)
    out["non_2xx"] = sum(r["non_2xx"] for r in results)
    return out


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((HOST, port)) != 0


def start_beacon(procs: Processes, server: str, env: dict, port: int, name: str):
    command = SERVERS[server].format(bin=BIN, app="statuspage.wsgi:application", port=port)
    proc = procs.start(name, shlex.split(command), env)
    wait_http(port, "/api/v2/status.json", proc=proc)
    return proc


def start_minimal(procs: Processes, server: str, manifest: Path, port: int):
    env = {
        **os.environ,
        "BENCH_MINIMAL_MANIFEST": str(manifest),
        "PYTHONPATH": str(BENCH),
        "PYTHONUNBUFFERED": "1",
    }
    argv = shlex.split(SERVERS[server].format(bin=BIN, app="minimal_app:application", port=port))
    proc = procs.start("minimal", argv, env)
    wait_http(port, next(iter(json.loads(manifest.read_text()))), proc=proc)
    return proc


def capture(paths: dict, key: str, tmp: Path) -> tuple[Path, dict]:
    """What Beacon answers each endpoint with, laid out for bench/minimal_app.py."""
    files = tmp / "bytes"
    files.mkdir(parents=True, exist_ok=True)
    manifest, sizes = {}, {}
    for name, (path, query) in paths.items():
        status, headers, body = http_get(
            PORT_BEACON, f"{path}?{query}" if query else path, {"Authorization": f"OAuth {key}"}
        )
        if status != 200:
            raise RuntimeError(f"Beacon answered {status} for {path}: {body[:300]!r}")
        target = files / f"{name}.json"
        target.write_bytes(body)
        # minimal_app routes by path; the query string (limit=100) is ignored there.
        manifest[path] = [str(target), headers.get("Content-Type", "application/json")]
        sizes[name] = {"bytes": len(body), "items": len(json.loads(body))}
    manifest_path = tmp / "manifest.json"
    manifest_path.write_text(json.dumps(manifest))
    return manifest_path, sizes


def wait_idle(servers: list, timeout: float = 120) -> float:
    """Wait until the servers have worked off what the last run queued (wrk stops sending,
    not the server answering): under 10 ms of CPU in 250 ms. Returns the seconds waited."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        before = sum(cpu_seconds(p.pid) for p in servers)
        time.sleep(0.25)
        if sum(cpu_seconds(p.pid) for p in servers) - before < 0.01:
            break
    return time.monotonic() - began


def measure_reads(
    paths: dict, key: str, duration: int, minimal_duration: int, rounds: int, servers: list
) -> list[dict]:
    # (target, port, connections it runs at, seconds): the limiter's cost does not depend on
    # the concurrency, so it is measured at 16 connections, where queueing is shortest.
    targets = [
        ("beacon", PORT_BEACON, CONNECTIONS, duration),
        ("limited", PORT_LIMITED, CONNECTIONS[:1], duration),
        ("minimal", PORT_MINIMAL, CONNECTIONS, minimal_duration),
    ]
    runs: dict = {}
    for number in range(rounds):
        log(f"reads: round {number + 1} of {rounds}")
        for name, (path, query) in paths.items():
            for connections in CONNECTIONS:
                for target, port, at, seconds in targets:
                    if connections not in at:
                        continue
                    url = f"http://{HOST}:{port}{path}" + (f"?{query}" if query else "")
                    result = wrk_api(url, connections, seconds, key)
                    result["idle_wait_s"] = round(wait_idle(servers), 2)
                    runs.setdefault((name, connections, target), []).append(result)
                    log(
                        f"{target:8} {name:12} c{connections:<3} {result['rps']:8.0f} rps "
                        f"p50 {result['p50_ms']:6.1f} ms p99 {result['p99_ms']:6.1f} ms "
                        f"non-2xx {result['non_2xx']} errors {result['socket_errors']}"
                    )
    rows = []
    for name, (path, query) in paths.items():
        for connections in CONNECTIONS:
            label = ENDPOINTS[name][0].replace("{component}", "{id}")
            label += f"?{query}" if query else ""
            row = {
                "endpoint": name,
                "label": label,
                "path": path,
                "query": query,
                "connections": connections,
            }
            for target, _, at, _ in targets:
                if connections in at:
                    row[target] = merged(runs[(name, connections, target)])
            row["ratio_minimal"] = _ratio(row["beacon"], row["minimal"])
            if "limited" in row:
                row["ratio_limited"] = _ratio(row["limited"], row["beacon"])
                row["ratio_limited_minimal"] = _ratio(row["limited"], row["minimal"])
            rows.append(row)
    return rows


def _ratio(a: dict, b: dict) -> float | None:
    return a["rps"] / b["rps"] if b["rps"] else None


# --- writes --------------------------------------------------------------------------------


class Client:
    """One keep-alive connection per thread; every request's status and time are kept.

    Writes go to `records`, the reads that check them to `reads`: a read after a write
    that does not show the write is a violation, kept in `stale`."""

    def __init__(self, key: str):
        self.headers = {"Authorization": f"OAuth {key}", "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection(HOST, PORT_BEACON, timeout=30)
        self.records: list[tuple[str, int, float]] = []
        self.reads: list[tuple[str, int, float]] = []
        self.problems: list[str] = []
        self.stale: list[str] = []

    def send(self, kind: str, method: str, path: str, body: dict | None, expect: int, into=None):
        into = self.records if into is None else into
        began = time.perf_counter()
        try:
            self.conn.request(
                method, path, None if body is None else json.dumps(body), self.headers
            )
            response = self.conn.getresponse()
            raw = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as error:
            self.conn.close()
            into.append((kind, 0, time.perf_counter() - began))
            self.problems.append(f"{kind}: {error!r}")
            return None
        into.append((kind, status, time.perf_counter() - began))
        if status != expect:
            self.problems.append(f"{kind}: {status} {raw[:200]!r}")
            return None
        try:
            return json.loads(raw)
        except ValueError:
            self.problems.append(f"{kind}: not JSON {raw[:200]!r}")
            return None

    def read_after_write(self, kind: str, path: str, shows, what: str) -> None:
        """One GET of the list the write changed; `shows(list)` says whether it shows it."""
        answer = self.send(kind, "GET", path, None, 200, into=self.reads)
        if answer is not None and not shows(answer):
            self.stale.append(f"{path} did not show {what}")


def run_threads(target, count: int) -> float:
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(count)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


def _latencies(times: list[float]) -> dict:
    ordered = sorted(times)
    if not ordered:
        return {"p50_ms": None, "p99_ms": None}
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
    }


def summary(records: list, seconds: float) -> dict:
    out = {
        "seconds": round(seconds, 2),
        "requests": len(records),
        "rps": len(records) / seconds,
        "failed": sum(1 for _, status, _ in records if not 200 <= status < 300),
        **_latencies([t for _, _, t in records]),
        "kinds": {},
    }
    for kind in sorted({k for k, _, _ in records}):
        mine = [r for r in records if r[0] == kind]
        out["kinds"][kind] = {
            "requests": len(mine),
            "rps": len(mine) / seconds,
            "failed": sum(1 for _, status, _ in mine if not 200 <= status < 300),
            "codes": {str(c): sum(1 for r in mine if r[1] == c) for c in {r[1] for r in mine}},
            **_latencies([t for _, _, t in mine]),
        }
    return out


# The processes whose CPU a write load is charged with, by family (main() fills it in).
CPU_FAMILIES: dict[str, list[int]] = {}


def _postgres_cpu() -> float:
    """Every PostgreSQL process's CPU, and what the ones that ended (backends) had used."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for path in Path("/proc").iterdir():
        if not path.name.isdigit():
            continue
        try:
            if (path / "comm").read_text().strip() not in ("postgres", "postmaster"):
                continue
            fields = (path / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15]) / tick
    return total


def cpu_now() -> dict[str, float]:
    """CPU seconds used so far by family: the Beacon servers, the Celery worker, PostgreSQL,
    and this process (the client threads)."""
    used = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in CPU_FAMILIES.items()}
    used["postgres"] = _postgres_cpu()
    times = os.times()
    used["client"] = times.user + times.system
    return used


def write_load(key: str, duration: int, step) -> dict:
    """WRITE_THREADS threads call step(client, thread, n) for n = 0, 1, ... until the time
    is up: the writes' summary, the reads after them, their violations and the problems,
    and the CPU each family of processes used per request (ms), the machine's own measure
    of what a write costs, steadier than its latency on a shared host."""
    clients = [Client(key) for _ in range(WRITE_THREADS)]
    stop_at = time.monotonic() + duration

    def work(i: int) -> None:
        n = 0
        while time.monotonic() < stop_at:
            step(clients[i], i, n)
            n += 1

    cpu_before = cpu_now()
    seconds = run_threads(work, WRITE_THREADS)
    cpu_after = cpu_now()
    for client in clients:
        client.conn.close()
    reads = [r for c in clients for r in c.reads]
    stale = [s for c in clients for s in c.stale]
    requests = sum(len(c.records) + len(c.reads) for c in clients) or 1
    return {
        **summary([r for c in clients for r in c.records], seconds),
        "cpu_ms_per_request": {
            name: (cpu_after[name] - cpu_before[name]) * 1000 / requests for name in cpu_after
        },
        "reads_after_writes": {
            **summary(reads, seconds),
            "violations": len(stale),
            "examples": stale[:10],
        }
        if reads
        else None,
        "problems": [p for c in clients for p in c.problems][:20],
    }


def _by_id(items: list, item_id: str) -> dict | None:
    return next((item for item in items if item.get("id") == item_id), None)


def patch_components(base: str, key: str, components: list[str], duration: int, check: bool):
    """Each thread moves its own component to major_outage and back, as fast as it can."""
    last: dict[str, str] = {}
    statuses = ("major_outage", "operational")

    def step(client: Client, i: int, n: int) -> None:
        component, status = components[i], statuses[n % 2]
        answer = client.send(
            "PATCH component",
            "PATCH",
            f"{base}/components/{component}",
            {"component": {"status": status}},
            200,
        )
        if answer is None:
            return
        if answer.get("status") != status:
            client.problems.append(f"PATCH answered status {answer.get('status')}")
        last[component] = status
        if check:
            client.read_after_write(
                "GET components",
                f"{base}/components",
                lambda items: (_by_id(items, component) or {}).get("status") == status,
                f"{component} {status}",
            )

    return write_load(key, duration, step), last


def _shows_update(item: dict | None, status: str, body: str) -> bool:
    return (
        item is not None
        and item.get("status") == status
        and any(u.get("body") == body for u in item.get("incident_updates") or ())
    )


def post_updates(base: str, key: str, incidents: list[str], duration: int, check: bool):
    """Each thread posts updates to its own open incident, identified and monitoring in turn,
    as a Statuspage client does: a PATCH of the incident with a status and a body."""
    last: dict[str, tuple[str, str]] = {}
    statuses = ("identified", "monitoring")

    def step(client: Client, i: int, n: int) -> None:
        incident, status = incidents[i], statuses[n % 2]
        body = f"Update {n} from client {i}: {status}; we are still on it."
        answer = client.send(
            "PATCH incident (post an update)",
            "PATCH",
            f"{base}/incidents/{incident}",
            {"incident": {"status": status, "body": body, "deliver_notifications": False}},
            200,
        )
        if answer is None:
            return
        if not _shows_update(answer, status, body):
            client.problems.append(f"PATCH answered without the update ({answer.get('status')})")
        last[incident] = (status, body)
        if check:
            client.read_after_write(
                "GET unresolved incidents",
                f"{base}/incidents/unresolved",
                lambda items: _shows_update(_by_id(items, incident), status, body),
                f"{incident}'s update {n}",
            )

    return write_load(key, duration, step), last


def open_and_resolve(base: str, key: str, components: list[str], duration: int, check: bool):
    """Each thread opens an incident on its own component (major outage), then resolves it."""
    opened: list[str] = []
    unresolved = f"{base}/incidents/unresolved"

    def step(client: Client, i: int, n: int) -> None:
        component = components[i]
        created = client.send(
            "POST incident (open)",
            "POST",
            f"{base}/incidents",
            {
                "incident": {
                    "name": f"Bench outage {i}.{n}",
                    "status": "investigating",
                    "body": "Requests to this service fail. We are investigating.",
                    "components": {component: "major_outage"},
                    "component_ids": [component],
                    "deliver_notifications": False,
                }
            },
            201,
        )
        if created is None:
            return
        incident = created["id"]
        opened.append(incident)
        if check:
            client.read_after_write(
                "GET unresolved incidents",
                unresolved,
                lambda items: _by_id(items, incident) is not None,
                f"{incident} opened",
            )
        resolved = client.send(
            "PATCH incident (resolve)",
            "PATCH",
            f"{base}/incidents/{incident}",
            {
                "incident": {
                    "status": "resolved",
                    "body": "Fixed: the service works again.",
                    "components": {component: "operational"},
                    "deliver_notifications": False,
                }
            },
            200,
        )
        if resolved is not None and check:
            client.read_after_write(
                "GET unresolved incidents",
                unresolved,
                lambda items: _by_id(items, incident) is None,
                f"{incident} resolved",
            )

    return write_load(key, duration, step), opened


def public_json(path: str) -> dict | None:
    with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
        status, _, body = http_get(PORT_BEACON, path, timeout=5)
        if status == 200:
            return json.loads(body)
    return None


def public_statuses() -> dict[str, str]:
    answer = public_json("/api/v2/components.json")
    return {c["id"]: c["status"] for c in answer["components"]} if answer else {}


def public_unresolved() -> dict[str, str]:
    answer = public_json("/api/v2/incidents/unresolved.json")
    return {i["id"]: i["status"] for i in answer["incidents"]} if answer else {}


def wait_until(shows, expected: dict[str, str], timeout: float = 60) -> float | None:
    """Seconds until shows() gives every expected value; None on timeout."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        shown = shows()
        if all(shown.get(k) == v for k, v in expected.items()):
            return time.monotonic() - began
        time.sleep(0.05)
    return None


def _log_load(name: str, load: dict) -> None:
    raw = load["reads_after_writes"]
    log(
        f"writes: {name}: {load['requests']} requests, {load['rps']:.0f}/s, p50 "
        f"{_n(load['p50_ms'], 1)} ms, p99 {_n(load['p99_ms'], 1)} ms, failed {load['failed']}"
        + (
            f"; {raw['requests']} reads after them, {raw['violations']} did not show the write"
            if raw
            else ""
        )
        + "; CPU ms/request "
        + ", ".join(f"{k} {v:.1f}" for k, v in load["cpu_ms_per_request"].items())
    )


def measure_writes(
    page_id: str, key: str, components: list[str], duration: int, check: bool
) -> dict:
    base = f"/api/v1/pages/{page_id}"
    headers = {"Authorization": f"OAuth {key}", "Content-Type": "application/json"}

    def api(method: str, path: str, body: dict | None = None, expect: int = 200):
        conn = http.client.HTTPConnection(HOST, PORT_BEACON, timeout=30)
        try:
            conn.request(method, base + path, None if body is None else json.dumps(body), headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        if response.status != expect:
            raise RuntimeError(f"{method} {path}: {response.status} {raw[:300]!r}")
        return json.loads(raw)

    # Components in no open incident or maintenance: 3-6 toggle, 7-10 have incidents opened
    # and resolved.
    togglers, incident_components = components[2:6], components[6:10]
    unresolved_before = sorted(i["id"] for i in api("GET", "/incidents/unresolved"))

    log(f"writes: {WRITE_THREADS} threads PATCH component statuses for {duration}s")
    patches, last = patch_components(base, key, togglers, duration, check)
    patched_visible = wait_until(public_statuses, last)
    _log_load("PATCH component", patches)

    # Each thread's own open incident, made before the timed part, on no component.
    mine = [
        api(
            "POST",
            "/incidents",
            {
                "incident": {
                    "name": f"Bench incident {i} taking updates",
                    "status": "investigating",
                    "body": "Some requests fail. We are investigating.",
                    "deliver_notifications": False,
                }
            },
            201,
        )["id"]
        for i in range(WRITE_THREADS)
    ]
    log(f"writes: {WRITE_THREADS} threads post updates to their own open incident for {duration}s")
    updates, last_updates = post_updates(base, key, mine, duration, check)
    wanted = {incident: status for incident, (status, _) in last_updates.items()}
    updates_visible = wait_until(public_unresolved, wanted)
    _log_load("post an incident update", updates)
    shown_updates = public_unresolved()
    api_updates = {
        incident: _shows_update(api("GET", f"/incidents/{incident}"), status, body)
        for incident, (status, body) in last_updates.items()
    }
    for incident in mine:  # untimed: the incident load below starts from the page as before
        api(
            "PATCH",
            f"/incidents/{incident}",
            {
                "incident": {
                    "status": "resolved",
                    "body": "Resolved.",
                    "deliver_notifications": False,
                }
            },
        )

    log(f"writes: {WRITE_THREADS} threads open and resolve incidents for {duration}s")
    cycles, opened = open_and_resolve(base, key, incident_components, duration, check)
    expected = {**last, **dict.fromkeys(incident_components, "operational")}
    cycles_visible = wait_until(public_statuses, expected)
    _log_load("open and resolve", cycles)

    shown = public_statuses()
    unresolved_after = sorted(i["id"] for i in api("GET", "/incidents/unresolved"))
    api_statuses = {c: api("GET", f"/components/{c}")["status"] for c in expected}
    loads = (patches, updates, cycles)
    raw = [load["reads_after_writes"] for load in loads if load["reads_after_writes"]]
    checks = {
        "public_matches_last_status": all(shown.get(c) == s for c, s in expected.items()),
        "api_matches_last_status": api_statuses == expected,
        "public_shows_last_updates": all(shown_updates.get(i) == s for i, s in wanted.items()),
        "api_shows_last_updates": all(api_updates.values()) and bool(api_updates),
        "public_after_patches_s": patched_visible,
        "public_after_updates_s": updates_visible,
        "public_after_incidents_s": cycles_visible,
        "updates_posted": updates["requests"],
        "incidents_opened": len(opened),
        "all_incidents_resolved": unresolved_after == unresolved_before,
        "failed_requests": sum(load["failed"] for load in loads),
        "reads_after_writes": sum(r["requests"] for r in raw) if check else None,
        "read_after_write_violations": sum(r["violations"] for r in raw) if check else None,
        "problems": [p for load in loads for p in load["problems"]][:20],
    }
    checks["ok"] = (
        checks["public_matches_last_status"]
        and checks["api_matches_last_status"]
        and checks["public_shows_last_updates"]
        and checks["api_shows_last_updates"]
        and checks["all_incidents_resolved"]
        and not checks["failed_requests"]
        and not checks["read_after_write_violations"]
        and not checks["problems"]
    )
    log(f"writes: checks {json.dumps({k: v for k, v in checks.items() if k != 'problems'})}")
    return {
        "threads": WRITE_THREADS,
        "duration": duration,
        "read_after_write": check,
        "component_patch": patches,
        "incident_update": updates,
        "incident_cycle": cycles,
        "expected": expected,
        "expected_updates": last_updates,
        "checks": checks,
    }


# --- profile -------------------------------------------------------------------------------


def _sample_medians(samples: list[dict]) -> dict | None:
    if not samples:
        return None
    out = {
        name: statistics.median(s[name] for s in samples)
        for name in (
            "wall_ms",
            "queries",
            "database_ms",
            "redis_commands",
            "redis_round_trips",
            "redis_ms",
        )
    }
    out["samples"] = len(samples)
    out["wall_ms_all"] = [round(s["wall_ms"], 2) for s in samples]
    # The instances one request builds, by model (the last sample's, as they do not vary).
    out["instances"] = dict(sorted(samples[-1]["instances"].items(), key=lambda i: -i[1]))
    return out


def profile(env: dict, page_id: str, key: str, repeats: int, cold: int) -> dict:
    base, query = f"/api/v1/pages/{page_id}", "limit=100"
    raw = manage_shell(env, PROFILE_CODE % (base, query, key, repeats, cold, str(ROOT)))
    return {
        "path": f"{base}/incidents?{query}",
        "entry_point": "statuspage.wsgi.application",
        "rate_limit": HUGE_LIMIT,
        "bytes": raw["bytes"],
        "repeats": raw["repeats"],
        "warm": _sample_medians(raw["warm"]),
        "cold_after_write": _sample_medians(raw["cold_after_write"]),
        "cold_after_bump": _sample_medians(raw["cold_after_bump"]),
        "bump_error": raw["bump_error"],
        "warm_after_cold": raw["warm_after_cold"],
        "same_bytes_after_cold": raw["same_bytes_after_cold"],
        "profiled_requests": raw["profiled_requests"],
        "cprofile_wall_ms": raw["profiled_wall_ms"],
        "cprofile_warm_top": raw["warm_top"],
        "cprofile_warm_own": raw["warm_own"],
        "cprofile_cold_top": raw["cold_top"],
        "cprofile_cold_own": raw["cold_own"],
        "cold_profiled_requests": raw["cold_profiled_requests"],
    }


# --- main ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 s, 1 round")
    parser.add_argument(
        "--duration", type=int, help="seconds per wrk run on Beacon (default 5; the reference 2)"
    )
    parser.add_argument("--rounds", type=int, help="rounds of the side-by-side runs (default 3)")
    parser.add_argument("--write-duration", type=int, help="seconds per write load (default 10)")
    parser.add_argument("--profile-repeats", type=int, default=50, help="warm GETs profiled")
    parser.add_argument(
        "--profile-cold", type=int, default=5, help="cold GETs profiled (each after a write)"
    )
    parser.add_argument(
        "--no-read-after-write",
        action="store_true",
        help="writes only: no GET of the written list after each write",
    )
    parser.add_argument(
        "--writes-only",
        action="store_true",
        help="the write loads alone (no reads beside the reference, no profile, no doc)",
    )
    parser.add_argument("--server", choices=sorted(SERVERS), default=DEFAULT_SERVER)
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    duration = args.duration or (2 if args.quick else 5)
    minimal_duration = min(duration, 2)
    rounds = args.rounds or (1 if args.quick else 3)
    write_duration = args.write_duration or (5 if args.quick else 10)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    tmp = Path(tempfile.mkdtemp(prefix="beacon-bench-api-"))
    procs = Processes(tmp)
    var_dir = tmp / "var"
    env = beacon_env(DB, var_dir)
    env.update(
        REDIS_URL=env["REDIS_URL"].rsplit("/", 1)[0] + f"/{REDIS_DB}",
        CACHE_KEY_PREFIX="beacon-bench-api",
        API_RATE_LIMIT_PER_MINUTE="0",
    )
    limited_env = {**env, "API_RATE_LIMIT_PER_MINUTE": str(HUGE_LIMIT)}
    flush = redis.Redis.from_url(env["REDIS_URL"]).flushdb
    ok, missed = False, []
    began = time.monotonic()
    try:
        started = datetime.now(UTC)
        busy = [p for p in (PORT_BEACON, PORT_LIMITED, PORT_MINIMAL) if not port_free(p)]
        if busy:
            raise RuntimeError(f"ports already in use: {busy}")
        result: dict = {
            "started": started.isoformat(timespec="seconds"),
            "argv": ["bench/api.py", *sys.argv[1:]],
            "mode": "quick" if args.quick else "full",
            "machine": machine(),
            "load_start": loadavg(),
            "server": args.server,
            "server_command": SERVERS[args.server].format(
                bin=".venv/bin", app="statuspage.wsgi:application", port=PORT_BEACON
            ),
            "worker_command": WORKER_CMD.format(bin=".venv/bin"),
            "rate_limits": {
                "beacon": 0,
                "limited": HUGE_LIMIT,
                "note": "API_RATE_LIMIT_PER_MINUTE=0 is no limit: statuspage.lib.ratelimit."
                "hit_rolling returns before it talks to Redis, so 'beacon' leaves the limiter "
                "out; 'limited' counts every request in Redis (SET NX, EXISTS, INCR, GET) and "
                "never refuses one.",
            },
            "duration": duration,
            "minimal_duration": minimal_duration,
            "rounds": rounds,
            "connections": list(CONNECTIONS),
        }

        pg_execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        pg_execute(f"CREATE DATABASE {DB}")
        flush()
        log("migrating, collecting static files")
        run_cmd([str(BIN / "python"), "manage.py", "migrate", "--noinput", "-v0"], env=env)
        run_cmd([str(BIN / "python"), "manage.py", "collectstatic", "--noinput", "-v0"], env=env)
        log(f"seeding {COMPONENTS} components, {INCIDENTS:,} incidents, {SUBSCRIBERS} subscribers")
        seed_began = time.monotonic()
        log(f"bench/seed.py: {json.dumps(run_seed(env, COMPONENTS, INCIDENTS))}")
        more = manage_shell(env, SEED_CODE % SUBSCRIBERS)
        result["dataset"] = {**more["counts"], "seconds": time.monotonic() - seed_began}
        log(f"seeded in {result['dataset']['seconds']:.1f}s: {json.dumps(more['counts'])}")
        page_id, key, components = more["page_id"], more["key"], more["components"]
        base = f"/api/v1/pages/{page_id}"
        # The uptime of the first component: it has the open incident with two updates.
        paths = {
            name: (base + path.format(component=components[0]), query)
            for name, (path, query) in ENDPOINTS.items()
        }

        worker = procs.start("worker", shlex.split(WORKER_CMD.format(bin=BIN)), env)
        servers = [
            start_beacon(procs, args.server, env, PORT_BEACON, "beacon"),
            start_beacon(procs, args.server, limited_env, PORT_LIMITED, "beacon-limited"),
        ]
        CPU_FAMILIES.update(beacon=[servers[0].pid], worker=[worker.pid])
        for port in (PORT_BEACON, PORT_LIMITED):  # every worker: connections, imports
            for path, query in paths.values():
                for _ in range(6):
                    http_get(port, f"{path}?{query}", {"Authorization": f"OAuth {key}"})
        manifest, sizes = capture(paths, key, tmp)
        start_minimal(procs, args.server, manifest, PORT_MINIMAL)
        result["sizes"] = sizes
        log("sizes: " + ", ".join(f"{k} {v['bytes']:,} B" for k, v in sizes.items()))

        if args.writes_only:
            result["reads"], result["profile"] = [], {}
        else:
            result["reads"] = measure_reads(paths, key, duration, minimal_duration, rounds, servers)
            log(f"profiling GET {base}/incidents?limit=100 in-process")
            result["profile"] = profile(
                limited_env, page_id, key, args.profile_repeats, args.profile_cold
            )
        prof = result["profile"]
        for kind in ("warm", "cold_after_write", "cold_after_bump"):
            if prof.get(kind):
                log(
                    f"profile: {kind}: {prof[kind]['wall_ms']:.1f} ms, "
                    f"{prof[kind]['queries']:.0f} queries ({prof[kind]['database_ms']:.1f} ms), "
                    f"{prof[kind]['redis_commands']:.0f} Redis commands "
                    f"({prof[kind]['redis_ms']:.1f} ms)"
                )
        # Timed writes only, as in the run before; then the same loads with a read of the
        # written list after each write, which must show it.
        timed = measure_writes(page_id, key, components, write_duration, False)
        if not args.no_read_after_write:
            log("writes again, each followed by a read of what it wrote")
            checked = measure_writes(page_id, key, components, max(3, write_duration // 2), True)
            timed["consistency"] = checked
            for name in ("reads_after_writes", "read_after_write_violations"):
                timed["checks"][name] = checked["checks"][name]
            timed["checks"]["ok"] = timed["checks"]["ok"] and checked["checks"]["ok"]
            timed["read_after_write"] = True
        result["writes"] = timed
        result["targets"] = targets(result)
        for target in result["targets"]:
            log(
                f"target {'met   ' if target['met'] else 'MISSED'} {target['name']}: "
                f"{target['measured']}"
            )
        result["load_end"] = loadavg()
        result["finished_in_s"] = round(time.monotonic() - began, 1)
        RESULTS_DIR.mkdir(exist_ok=True)
        out = RESULTS_DIR / f"api-{started:%Y%m%dT%H%M%SZ}.json"
        out.write_text(json.dumps(result, indent=2, default=str))
        log(f"results: {out.relative_to(ROOT)}")
        if not args.no_doc and not args.writes_only:
            write_doc(result, out)
            log(f"updated {DOC.relative_to(ROOT)}")
        ok = result["writes"]["checks"]["ok"] and not any(
            row[t]["non_2xx"] or row[t]["socket_errors"]
            for row in result["reads"]
            for t in ("beacon", "limited", "minimal")
            if t in row
        )
        if not ok:
            log("some requests failed or a check did not hold: see the results")
        missed = [t["name"] for t in result["targets"] if not t["met"]]
        if missed:
            log(f"targets missed: {'; '.join(missed)}")
    finally:
        procs.stop_all()
        with contextlib.suppress(Exception):
            flush()
        if not args.keep_database:
            with contextlib.suppress(Exception):
                pg_execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        if ok and not args.keep_logs:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"logs kept in {tmp}")
    if not ok or missed:
        raise SystemExit(1)


# --- targets -------------------------------------------------------------------------------

# Issue 20's targets, measured beside the minimal view in the same run.
TARGET_SHARES = {"components": 0.15, "unresolved": 0.15, "incidents": 0.10}
TARGET_SHARE_CONNECTIONS = 16
TARGET_P99_MS, TARGET_P99_CONNECTIONS = 100.0, 64
TARGET_WRITE_P50_MS = 30.0
# Target name: (part of result["writes"], request kind).
WRITE_TARGETS = {
    "PATCH a component": ("component_patch", "PATCH component"),
    "post an incident update": ("incident_update", "PATCH incident (post an update)"),
}

# The run before issue 20's work, quoted as it was measured: 2026-12-04, commit 1f19d0c
# (bench/results/api-20261204T181819Z.json on that machine, not committed).
BEFORE_DATE, BEFORE_COMMIT = "2026-12-04", "1f19d0c"
# req/s and p50 at 16 connections, the minimal view's req/s at 16, p99 at 64.
BEFORE_READS: dict[str, dict[str, float]] = {
    "components": {"rps": 237, "p50_ms": 58.8, "minimal_rps": 11644, "p99_64_ms": 425.8},
    "incidents": {"rps": 24, "p50_ms": 569.3, "minimal_rps": 3321, "p99_64_ms": 3809.6},
    "unresolved": {"rps": 129, "p50_ms": 114.9, "minimal_rps": 13187, "p99_64_ms": 812.3},
    "subscribers": {"rps": 154, "p50_ms": 97.9, "minimal_rps": 9774, "p99_64_ms": 667.2},
    "uptime": {"rps": 228, "p50_ms": 68.5, "minimal_rps": 13317, "p99_64_ms": 447.7},
}
# At 4 connections, writes only.
BEFORE_WRITES: dict[str, dict[str, float]] = {
    "PATCH component": {"p50_ms": 27.6, "p99_ms": 64.7, "rps": 121.6},
    "POST incident (open)": {"p50_ms": 83.1, "p99_ms": 193.2, "rps": 22.8},
    "PATCH incident (resolve)": {"p50_ms": 84.9, "p99_ms": 211.0, "rps": 22.8},
}
# That run did not post updates to an open incident; its nearest request was the resolve.
BEFORE_STAND_IN = {"PATCH incident (post an update)": "PATCH incident (resolve)"}


def targets(result: dict) -> list[dict]:
    """Each of issue 20's targets: what was measured, and whether it was met."""
    rows = {(r["endpoint"], r["connections"]): r for r in result["reads"]}
    out = []
    for name, share in TARGET_SHARES.items() if rows else ():
        row = rows[(name, TARGET_SHARE_CONNECTIONS)]
        value = row["ratio_minimal"]
        out.append(
            {
                "name": f"`…{row['label']}` at {TARGET_SHARE_CONNECTIONS} connections: "
                f"Beacon / minimal ≥ {share:.0%}",
                "measured": _pct(value, 1),
                "value": value,
                "met": value is not None and value >= share,
            }
        )
    for name in ENDPOINTS if rows else ():
        row = rows[(name, TARGET_P99_CONNECTIONS)]
        beacon = row["beacon"]
        clean = not beacon["non_2xx"] and not beacon["socket_errors"]
        out.append(
            {
                "name": f"`…{row['label']}` at {TARGET_P99_CONNECTIONS} connections: "
                f"p99 < {TARGET_P99_MS:.0f} ms",
                "measured": f"{_n(beacon['p99_ms'], 1)} ms"
                + (
                    ""
                    if clean
                    else f" ({beacon['non_2xx']} non-2xx, {beacon['socket_errors']} errors)"
                ),
                "value": beacon["p99_ms"],
                "met": clean and beacon["p99_ms"] < TARGET_P99_MS,
            }
        )
    writes = result["writes"]
    for name, (part, kind) in WRITE_TARGETS.items():
        measured = writes[part]["kinds"].get(kind, {})
        p50 = measured.get("p50_ms")
        out.append(
            {
                "name": f"{name} at {writes['threads']} connections: "
                f"p50 < {TARGET_WRITE_P50_MS:.0f} ms",
                "measured": f"{_n(p50, 1)} ms"
                + (f" ({measured['failed']} failed)" if measured.get("failed") else ""),
                "value": p50,
                "met": p50 is not None and p50 < TARGET_WRITE_P50_MS and not measured["failed"],
            }
        )
    violations = writes["checks"]["read_after_write_violations"]
    if violations is not None:
        out.append(
            {
                "name": "a read after a write shows the write",
                "measured": f"{violations} of {writes['checks']['reads_after_writes']:,} "
                "reads did not",
                "value": violations,
                "met": violations == 0,
            }
        )
    return out


# --- the report ----------------------------------------------------------------------------


def write_doc(result: dict, out: Path) -> None:
    DOC.write_text(_replace_section(DOC.read_text(), render(result, out)))


def _replace_section(doc: str, text: str) -> str:
    section = f"{DOC_START}\n{text}\n{DOC_END}"
    if DOC_START in doc:
        return re.sub(
            re.escape(DOC_START) + ".*?" + re.escape(DOC_END), lambda _: section, doc, flags=re.S
        )
    return doc.rstrip() + "\n\n## Management API v1\n\n" + section + "\n"


def render(result: dict, out: Path) -> str:
    ds, writes = result["dataset"], result["writes"]
    m = result["machine"]
    lines = [
        f"Last run: {result['started']} ({result['mode']} run, "
        f"{result['finished_in_s'] / 60:.0f} minutes), commit {m['git']}"
        f"{' with uncommitted changes' if m['git_dirty'] else ''}: `{' '.join(result['argv'])}` "
        f"(raw: `{out.relative_to(ROOT)}`, not committed). Load average "
        f"{result['load_start']} at the start, {result['load_end']} at the end; "
        f"{m['nproc']} CPUs shared by wrk, the servers, PostgreSQL and Redis, so read the "
        "ratios (measured side by side, in the same minutes) rather than the absolute numbers.",
        "",
        f"**Method.** A page of {ds['components']} components in {ds['groups']} groups with 90 "
        f"days of daily uptime, {ds['incidents']:,} incidents with {ds['updates']:,} updates "
        f"(2 to 4 each), {ds['unresolved']} of them open, and {ds['subscribers']} subscribers "
        f"({ds['active_subscribers']} active, some to a few components only). Beacon runs as in "
        f"production: `{result['server_command']}` on PostgreSQL and Redis, `DEBUG` off, one "
        "Celery worker rebuilding the public snapshots after writes. Every request carries a "
        "superuser's key (`Authorization: OAuth <key>`). Each endpoint gets `wrk -t2 -c16` and "
        f"`-c64`, {result['duration']} s on Beacon and {result['minimal_duration']} s on the "
        "reference, one after the other (the next run starts once the servers are idle), "
        f"rounds: {result['rounds']}; the tables give the medians. The servers:",
        "",
        "- *Beacon*: `API_RATE_LIMIT_PER_MINUTE=0`: the limiter returns before it talks to "
        "Redis, so these numbers leave it out.",
        "- *Limit 10⁹*: the same Beacon with a limit no run reaches, so every request is "
        "counted in Redis as in production. Measured at 16 connections only; its requests/s "
        "and their share of Beacon's.",
        "- *Minimal*: `bench/minimal_app.py` under the same server command, returning the bytes "
        "Beacon answered for the endpoint from memory. Beacon / minimal measures what Beacon's "
        "own work costs: 100 % would mean it costs nothing.",
        "",
        *_targets_text(result),
        "",
        *_reads_text(result),
        "",
        *_before_after_text(result),
        "",
        *_writes_text(writes),
        "",
        *_profile_text(result["profile"]),
    ]
    return "\n".join(lines)


def _targets_text(result: dict) -> list[str]:
    rows = result["targets"]
    met = sum(1 for t in rows if t["met"])
    return [
        f"**Issue 20's targets** (this run): {met} of {len(rows)} met"
        + (" — all of them." if met == len(rows) else ".")
        + (
            " A quick run's short loads say little about p99s: the full run is the one to judge by."
            if result["mode"] == "quick"
            else ""
        ),
        "",
        "| Target | Measured | Met |",
        "| --- | ---: | :---: |",
        *(f"| {t['name']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |" for t in rows),
    ]


def _reads_text(result: dict) -> list[str]:
    reads = result["reads"]
    table = []
    for row in reads:
        b, mini, lim = row["beacon"], row["minimal"], row.get("limited")
        size = result["sizes"][row["endpoint"]]["bytes"]
        limited = f"{_n(lim['rps'])} | {_pct(row['ratio_limited'])}" if lim is not None else "– | –"
        table.append(
            f"| `…{row['label']}` | {size / 1024:,.1f} KiB | {row['connections']} "
            f"| **{_n(b['rps'])}** | {_n(b['p50_ms'], 1)} ms | {_n(b['p99_ms'], 1)} ms "
            f"| {b['non_2xx']} / {b['socket_errors']} | {limited} | {_n(mini['rps'])} "
            f"| **{_pct(row['ratio_minimal'], 1)}** |"
        )
    ratios = [r["ratio_minimal"] for r in reads if r["ratio_minimal"] is not None]
    limiter = [r["ratio_limited"] for r in reads if r.get("ratio_limited") is not None]
    by_name = {(r["endpoint"], r["connections"]): r for r in reads}
    scaling = [
        by_name[(name, CONNECTIONS[-1])]["beacon"]["rps"]
        / by_name[(name, CONNECTIONS[0])]["beacon"]["rps"]
        for name in ENDPOINTS
        if by_name[(name, CONNECTIONS[0])]["beacon"]["rps"]
    ]
    spread = max(
        (
            (max(r["beacon"]["rps_all"]) - min(r["beacon"]["rps_all"])) / r["beacon"]["rps"]
            for r in reads
            if r["beacon"].get("rps_all") and r["beacon"]["rps"]
        ),
        default=None,
    )
    summary_ = (
        f"Beacon answers at {_pct(min(ratios), 1)} to {_pct(max(ratios), 1)} of the minimal "
        f"view's rate. At {CONNECTIONS[-1]} connections it serves {_pct(min(scaling))} to "
        f"{_pct(max(scaling))} of its rate at {CONNECTIONS[0]}. With the limiter counting, it "
        f"keeps {_pct(min(limiter))} to {_pct(max(limiter))} of its requests/s (median "
        f"{_pct(statistics.median(limiter))})"
    )
    if spread is not None:
        summary_ += (
            f"; the rounds of one measurement differ by up to {_pct(spread)} of their median, "
            "so read a few per cent either way as noise"
        )
    return [
        "**Reads.**",
        "",
        "| Endpoint | Size | Conns | Beacon req/s | p50 | p99 | non-2xx / errors "
        "| Limit 10⁹ req/s | / Beacon | Minimal req/s | Beacon / minimal |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *table,
        "",
        summary_ + ".",
    ]


def _gain(before, after, higher_is_better: bool) -> str:
    """How many times better `after` is than `before`."""
    if not before or not after:
        return "–"
    gain = after / before if higher_is_better else before / after
    return f"{gain:,.1f}×" if gain >= 1.95 else f"{gain:,.2f}×"


def _before_after_text(result: dict) -> list[str]:
    by_name = {(r["endpoint"], r["connections"]): r for r in result["reads"]}
    reads = []
    for name, before in BEFORE_READS.items():
        at16 = by_name[(name, CONNECTIONS[0])]
        at64 = by_name[(name, CONNECTIONS[-1])]
        share_before = before["rps"] / before["minimal_rps"]
        share_after = at16["ratio_minimal"]
        p99_after = at64["beacon"]["p99_ms"]
        reads.append(
            f"| `…{at16['label']}` | {_pct(share_before, 1)} | **{_pct(share_after, 1)}** "
            f"| {_gain(share_before, share_after, True)} | {before['rps']:,} "
            f"| {_n(at16['beacon']['rps'])} | {_gn(before['p50_ms'])} ms "
            f"| {_n(at16['beacon']['p50_ms'], 1)} ms | {_gn(before['p99_64_ms'])} ms "
            f"| **{_n(p99_after, 1)} ms** | {_gain(before['p99_64_ms'], p99_after, False)} |"
        )
    writes = []
    after_kinds = {
        kind: k
        for part in ("component_patch", "incident_update", "incident_cycle")
        for kind, k in result["writes"][part]["kinds"].items()
    }
    for kind, after in after_kinds.items():
        stand_in = BEFORE_STAND_IN.get(kind)
        quoted = BEFORE_WRITES.get(stand_in or kind)
        if quoted is None:
            continue
        label = f"{kind}¹" if stand_in else kind
        writes.append(
            f"| {label} | {_gn(quoted['p50_ms'])} ms | **{_n(after['p50_ms'], 1)} ms** "
            f"| {_gain(quoted['p50_ms'], after['p50_ms'], False)} | {_gn(quoted['p99_ms'])} ms "
            f"| {_n(after['p99_ms'], 1)} ms | {quoted['rps']:,.1f} | {after['rps']:,.1f} |"
        )
    return [
        f"**Before and after.** *Before*: the run of {BEFORE_DATE} at commit "
        f"{BEFORE_COMMIT}, before issue 20's work (the same bench, machine and data; numbers "
        f"quoted from that run). *After*: this run, commit {result['machine']['git']}. The "
        "share of the minimal view is measured side by side in each run, so it compares "
        "across runs better than requests/s or latencies, which follow the machine's load. "
        "× is how many times better after is than before.",
        "",
        f"| Endpoint | Beacon / minimal at {CONNECTIONS[0]}, before | after | × "
        f"| req/s at {CONNECTIONS[0]}, before | after | p50 at {CONNECTIONS[0]}, before "
        f"| after | p99 at {CONNECTIONS[-1]}, before | after | × |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *reads,
        "",
        f"| Write ({WRITE_THREADS} connections) | p50 before | p50 after | × | p99 before "
        "| p99 after | req/s before | req/s after |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *writes,
        "",
        f"¹ The {BEFORE_DATE} run did not post updates to an open incident; its nearest "
        "request, quoted as its before, is resolving one (a PATCH that posts the resolved "
        "update and sets a component back to operational).",
    ]


def _writes_text(writes: dict) -> list[str]:
    checks = writes["checks"]
    rows = []
    raw_rows = []
    cpu_rows: list[str] = []
    for part, title in (
        ("component_patch", "PATCH component"),
        ("incident_update", "post an incident update"),
        ("incident_cycle", "open and resolve"),
    ):
        load = writes[part]
        for kind, k in load["kinds"].items():
            rows.append(
                f"| {kind} | {k['requests']:,} | {k['rps']:.1f} | {_n(k['p50_ms'], 1)} ms "
                f"| {_n(k['p99_ms'], 1)} ms | {k['failed']} |"
            )
        cpu = load.get("cpu_ms_per_request")
        if cpu:
            cpu_rows.append(
                f"| {title} | {cpu['beacon']:.1f} | {cpu['postgres']:.1f} | {cpu['worker']:.1f} "
                f"| {cpu['client']:.1f} | {sum(cpu.values()):.1f} |"
            )
        raw = writes.get("consistency", writes)[part]["reads_after_writes"]
        if raw:
            raw_rows.append(
                f"| {title} | {', '.join(f'`{kind}`' for kind in raw['kinds'])} "
                f"| {raw['requests']:,} | {_n(raw['p50_ms'], 1)} ms | {_n(raw['p99_ms'], 1)} ms "
                f"| {raw['failed']} | **{raw['violations']}** |"
            )
    lines = [
        f"**Writes.** {writes['threads']} client threads (Python, one keep-alive connection "
        f"each, so at most {writes['threads']} requests in flight) for {writes['duration']} s "
        "per load, `deliver_notifications: false` (subscriber mail is measured in its own "
        "section): (1) each thread PATCHes its own component to `major_outage` and back "
        '(`{"component": {"status": …}}`); (2) each thread posts updates to its own open '
        "incident, opened before the timed part, as Statuspage clients do: "
        '`PATCH …/incidents/{id}` with `{"incident": {"status": "identified" or "monitoring" '
        'in turn, "body": …}}`; (3) each thread opens an incident on its own component (POST, '
        "`major_outage`) and resolves it (PATCH, `resolved`, the component back to "
        "`operational`).",
        "",
        "| Request | Requests | req/s | p50 | p99 | Failed |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *rows,
    ]
    if cpu_rows:
        lines += [
            "",
            "CPU per write, by process family, in ms (from /proc over each load: the Beacon "
            "server's processes, every PostgreSQL process, the Celery worker, and the bench's "
            "own client threads, which share the machine). With 4 requests in flight on 2 "
            "cores, a p50 under 30 ms needs about 15 ms in all: this is the steadier measure "
            "of what a write costs when the host's speed moves the latencies from run to run.",
            "",
            "| Load | Beacon | PostgreSQL | Worker | Client | All |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            *cpu_rows,
        ]
    if raw_rows:
        lines += [
            "",
            "Read after write: the three loads again, for half as long, each write followed "
            "by a GET from the same thread of the list that shows it (the components for a "
            "component, the unresolved incidents for an incident), which must show it (not "
            "timed with the writes above, which are writes only, as in the run before). It "
            "checks (the status written; the update's body; an opened incident "
            "listed, a resolved one gone). A violation is a read that did not.",
            "",
            "| Load | Read | Reads | p50 | p99 | Failed | Violations |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
            *raw_rows,
        ]
    lines += [
        "",
        "Afterwards `/api/v2/components.json` showed every component's last status: "
        f"{_yes(checks['public_matches_last_status'])} "
        f"({_n(checks['public_after_patches_s'], 2)} s after the PATCH load, "
        f"{_n(checks['public_after_incidents_s'], 2)} s after the incident load), and the API "
        f"agreed: {_yes(checks['api_matches_last_status'])}; "
        "`/api/v2/incidents/unresolved.json` showed each updated incident's last status: "
        f"{_yes(checks['public_shows_last_updates'])} "
        f"({_n(checks['public_after_updates_s'], 2)} s after the load), and the API its last "
        f"update: {_yes(checks['api_shows_last_updates'])}; the {checks['incidents_opened']} "
        f"incidents opened were all resolved: {_yes(checks['all_incidents_resolved'])}; "
        f"failed requests: {checks['failed_requests']}.",
    ]
    return lines


def _profile_text(prof: dict) -> list[str]:
    kinds = [
        ("warm", f"warm (the same GET again; median of {prof['repeats']})"),
        ("cold_after_write", "cold: the first GET after an update posted to an open incident"),
        ("cold_after_bump", "cold: the first GET after `statuspage.api_v1.generation.bump()`"),
    ]
    rows = [
        f"| {label} | **{p['wall_ms']:.1f} ms** | {p['queries']:.0f} | {p['database_ms']:.1f} ms "
        f"| {p['redis_commands']:.0f} ({p['redis_round_trips']:.0f}) | {p['redis_ms']:.1f} ms "
        f"| {', '.join(f'{n:,} {model}' for model, n in p['instances'].items()) or 'none'} |"
        for kind, label in kinds
        if (p := prof[kind])
    ]

    def listing(entries: list[dict], key: str, count: int = 10) -> list[str]:
        return [
            f"| `{e['function']}` | {e[key]:.2f} ms | {e['calls']:,.1f} |" for e in entries[:count]
        ]

    cold = prof["cold_after_write"]
    lines = [
        f"**Where a list of 100 incidents goes.** `GET …/incidents?limit=100` "
        f"({prof['bytes'] / 1024:,.0f} KiB) in one process through `{prof['entry_point']}`, "
        "the application the servers load (every middleware, the key, a limit of 10⁹, and "
        "whatever answers before Django). PostgreSQL is timed around the driver's `execute` "
        "(the query and the transfer) on every database connection, Redis around redis-py's "
        "commands (a pipeline is one round trip); the instances are the model instances "
        "Django built from rows. Cold requests are each the first after a write, "
        f"{cold['samples'] if cold else 0} of them, medians:",
        "",
        "| Request | Wall | Queries | PostgreSQL | Redis commands (round trips) | Redis "
        "| Model instances |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
        *rows,
    ]
    if prof["bump_error"]:
        lines += ["", f"No generation to bump here: {prof['bump_error']}."]
    if prof["same_bytes_after_cold"] is False:
        lines += ["", "**The warm answer after a cold one differed from it.**"]
    lines += [
        "",
        f"Under cProfile ({prof['profiled_requests']} warm requests, "
        f"{prof['cprofile_wall_ms']:.1f} ms each with the profiler on, which slows Python code "
        "more than C: shares, not times), the functions that take the most time themselves, "
        "per request:",
        "",
        "| Function | Own time | Calls |",
        "| --- | ---: | ---: |",
        *listing(prof["cprofile_warm_top"], "tottime_ms"),
        "",
        "and Beacon's own functions by the time spent in them and what they call (leaving "
        "out those that only pass the request on, spending 95 % or more of their time in one "
        "callee: the entry point, middleware, decorators), warm:",
        "",
        "| Function | Cumulative | Calls |",
        "| --- | ---: | ---: |",
        *listing(prof["cprofile_warm_own"], "cumtime_ms"),
    ]
    if prof["cprofile_cold_own"]:
        lines += [
            "",
            f"and cold ({prof['cold_profiled_requests']} requests, each the first after a write):",
            "",
            "| Function | Cumulative | Calls |",
            "| --- | ---: | ---: |",
            *listing(prof["cprofile_cold_own"], "cumtime_ms"),
        ]
    return lines


def _yes(value: bool) -> str:
    return "yes" if value else "**no**"


def _n(value, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _gn(value) -> str:
    """A quoted number as it was written (27.6, 3,809.6, 237)."""
    return f"{value:,}"


def _pct(value, digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}%}"


if __name__ == "__main__":
    os.chdir(ROOT)
    main()

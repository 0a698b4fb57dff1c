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
have worked off the last one's queue), medians of the rounds. Writes: 4 client threads
for --write-duration seconds PATCHing components' statuses back and forth, then 4 threads
opening (POST) and resolving (PATCH) incidents; then /api/v2/components.json must show every
last status and no request may have failed.
Profile: one `GET /incidents?limit=100` in-process through Django's WSGI handler, timed
in parts (key, rate limit, queries, dicts, validation, JSON) and under cProfile.

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

# One GET through Django's WSGI handler (middleware, signals and all), timed in parts: each
# wrapper adds its own time, and the database and Redis time inside it, to its part.
PROFILE_CODE = r"""
import cProfile, io, json, pstats, statistics, sys, time
from collections import defaultdict
from pathlib import Path
import redis.client
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from ninja.operation import Operation
from statuspage.lib import ratelimit
from statuspage.api_v1 import base, incidents
from statuspage.api_v1.routes import api

PATH, QUERY, KEY, REPEATS = %r, %r, %r, %d
handler = WSGIHandler()


def environ():
    return {
        "REQUEST_METHOD": "GET", "PATH_INFO": PATH, "QUERY_STRING": QUERY,
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "HTTP_AUTHORIZATION": "OAuth " + KEY, "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http", "wsgi.version": (1, 0),
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }


def call():
    seen = []
    response = handler(environ(), lambda status, headers, exc_info=None: seen.append(status))
    body = b"".join(response)
    response.close()  # request_finished, as a server does
    return seen[0], body


spent, db, rd, queries, commands = (defaultdict(float), defaultdict(float),
                                    defaultdict(float), defaultdict(int), defaultdict(int))
stack = ["rest"]


def timed(name, fn):
    def wrapper(*args, **kwargs):
        stack.append(name)
        began = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - began
            stack.pop()
    return wrapper


def in_database(execute, sql, params, many, context):
    began = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        db[stack[-1]] += time.perf_counter() - began
        queries[stack[-1]] += 1


execute_command = redis.client.Redis.execute_command


def in_redis(self, *args, **options):
    began = time.perf_counter()
    try:
        return execute_command(self, *args, **options)
    finally:
        rd[stack[-1]] += time.perf_counter() - began
        commands[stack[-1]] += 1


redis.client.Redis.execute_command = in_redis
base._KeyChecks.authenticate = timed("auth", base._KeyChecks.authenticate)
base.api_key_authenticate = timed("key", base.api_key_authenticate)
ratelimit.hit_rolling = timed("ratelimit", ratelimit.hit_rolling)
incidents.page_or_404 = timed("page", incidents.page_or_404)
incidents._incidents = timed("incidents", incidents._incidents)
incidents._context = timed("context", incidents._context)
incidents.incident_object = timed("dicts", incidents.incident_object)
Operation._result_to_response = timed("result", Operation._result_to_response)
api.renderer.render = timed("render", api.renderer.render)

samples = []
with connection.execute_wrapper(in_database):
    for _ in range(10):  # connections, imports, caches
        status, body = call()
    assert status.startswith("200"), status
    for _ in range(REPEATS):
        for d in (spent, db, rd, queries, commands):
            d.clear()
        began = time.perf_counter()
        call()
        wall = time.perf_counter() - began
        samples.append({"wall": wall, "spent": dict(spent), "db": dict(db), "redis": dict(rd),
                        "queries": dict(queries), "commands": dict(commands)})

    # One more request, counting the model instances it builds, by model.
    from django.db.models import Model

    built = defaultdict(int)
    from_db = Model.from_db.__func__

    def counted(cls, db, field_names, values):
        built[cls.__name__] += 1
        return from_db(cls, db, field_names, values)

    Model.from_db = classmethod(counted)
    call()
    Model.from_db = classmethod(from_db)

    profiler = cProfile.Profile()
    profiled = max(10, REPEATS // 2)
    began = time.perf_counter()
    profiler.enable()
    for _ in range(profiled):
        call()
    profiler.disable()
    profiled_wall = (time.perf_counter() - began) / profiled

# Named hot spots: (label, file ending, function). cumtime counts what they call.
HOTSPOTS = [
    ("rows turned into model instances (Model.from_db)", "django/db/models/base.py", "from_db"),
    ("timestamptz values parsed (Django's loader on psycopg's Python one)",
     "backends/postgresql/psycopg_any.py", "load"),
    ("prefetch_related_objects", "django/db/models/query.py", "prefetch_related_objects"),
    ("related querysets made per instance by prefetch_related (_apply_rel_filters)",
     "django/db/models/fields/related_descriptors.py", "_apply_rel_filters"),
    ("QuerySet clones (Query.clone, deepcopy of select_related)",
     "django/db/models/sql/query.py", "clone"),
    ("statuspage_json.timestamp (datetimes to text)", "incidents/statuspage_json.py",
     "timestamp"),
    ("Incident.get_absolute_url (reverse)", "incidents/models.py", "get_absolute_url"),
    ("pydantic model_validate", "~", "<method 'validate_python' of"),
    ("json.dumps", "json/__init__.py", "dumps"),
]
stats = pstats.Stats(profiler).stats
hotspots = []
for label, ending, function in HOTSPOTS:
    calls = cumtime = 0.0
    for (filename, line, name), (cc, nc, tottime, cum, callers) in stats.items():
        if filename.endswith(ending) and (name == function or name.startswith(function)):
            calls += nc
            cumtime += cum
    hotspots.append({"label": label, "calls": calls / profiled,
                     "cumtime_ms": cumtime * 1000 / profiled,
                     "share": cumtime / profiled / profiled_wall})
top = []
for (filename, line, function), (cc, nc, tottime, cumtime, callers) in stats.items():
    name = Path(filename).name if filename != "~" else ""
    top.append((tottime, cumtime, nc, f"{name}:{line}({function})"))
top.sort(reverse=True)
print("BENCHJSON " + json.dumps({
    "status": status, "bytes": len(body), "repeats": REPEATS, "samples": samples,
    "profiled_requests": profiled, "profiled_wall_ms": profiled_wall * 1000,
    "hotspots": hotspots, "instances": dict(sorted(built.items(), key=lambda i: -i[1])),
    "top_tottime": [
        {"function": f, "tottime_ms": t * 1000 / profiled, "cumtime_ms": c * 1000 / profiled,
         "calls": n / profiled}
        for t, c, n, f in top[:25]
    ],
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
    """One keep-alive connection per thread; every request's status and time are kept."""

    def __init__(self, key: str):
        self.headers = {"Authorization": f"OAuth {key}", "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection(HOST, PORT_BEACON, timeout=30)
        self.records: list[tuple[str, int, float]] = []
        self.problems: list[str] = []

    def send(self, kind: str, method: str, path: str, body: dict, expect: int) -> dict | None:
        began = time.perf_counter()
        try:
            self.conn.request(method, path, json.dumps(body), self.headers)
            response = self.conn.getresponse()
            raw = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as error:
            self.conn.close()
            self.records.append((kind, 0, time.perf_counter() - began))
            self.problems.append(f"{kind}: {error!r}")
            return None
        self.records.append((kind, status, time.perf_counter() - began))
        if status != expect:
            self.problems.append(f"{kind}: {status} {raw[:200]!r}")
            return None
        return json.loads(raw)


def run_threads(target, count: int) -> float:
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(count)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


def summary(records: list, seconds: float) -> dict:
    def stats(times: list[float]) -> dict:
        ordered = sorted(times)
        return {
            "p50_ms": statistics.median(ordered) * 1000 if ordered else None,
            "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000
            if ordered
            else None,
        }

    out = {
        "seconds": round(seconds, 2),
        "requests": len(records),
        "rps": len(records) / seconds,
        "failed": sum(1 for _, status, _ in records if not 200 <= status < 300),
        **stats([t for _, _, t in records]),
        "kinds": {},
    }
    for kind in sorted({k for k, _, _ in records}):
        mine = [r for r in records if r[0] == kind]
        out["kinds"][kind] = {
            "requests": len(mine),
            "rps": len(mine) / seconds,
            "failed": sum(1 for _, status, _ in mine if not 200 <= status < 300),
            "codes": {str(c): sum(1 for r in mine if r[1] == c) for c in {r[1] for r in mine}},
            **stats([t for _, _, t in mine]),
        }
    return out


def patch_components(base: str, key: str, components: list[str], duration: int) -> tuple:
    """Each thread moves its own component to major_outage and back, as fast as it can."""
    clients = [Client(key) for _ in range(WRITE_THREADS)]
    last: dict[str, str] = {}
    stop_at = time.monotonic() + duration

    def work(i: int) -> None:
        client, component = clients[i], components[i]
        statuses = ("major_outage", "operational")
        n = 0
        while time.monotonic() < stop_at:
            status = statuses[n % 2]
            body = {"component": {"status": status}}
            path = f"{base}/components/{component}"
            answer = client.send("PATCH component", "PATCH", path, body, 200)
            if answer is not None:
                if answer.get("status") != status:
                    client.problems.append(f"PATCH answered status {answer.get('status')}")
                last[component] = status
            n += 1

    seconds = run_threads(work, WRITE_THREADS)
    records = [r for c in clients for r in c.records]
    problems = [p for c in clients for p in c.problems]
    return summary(records, seconds), last, problems


def open_and_resolve(base: str, key: str, components: list[str], duration: int) -> tuple:
    """Each thread opens an incident on its own component (major outage), then resolves it."""
    clients = [Client(key) for _ in range(WRITE_THREADS)]
    stop_at = time.monotonic() + duration
    opened: list[str] = []

    def work(i: int) -> None:
        client, component = clients[i], components[i]
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            created = client.send(
                "POST incident",
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
                continue
            opened.append(created["id"])
            client.send(
                "PATCH incident (resolve)",
                "PATCH",
                f"{base}/incidents/{created['id']}",
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

    seconds = run_threads(work, WRITE_THREADS)
    records = [r for c in clients for r in c.records]
    problems = [p for c in clients for p in c.problems]
    return summary(records, seconds), opened, problems


def public_statuses() -> dict[str, str]:
    with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
        status, _, body = http_get(PORT_BEACON, "/api/v2/components.json", timeout=5)
        if status == 200:
            return {c["id"]: c["status"] for c in json.loads(body)["components"]}
    return {}


def wait_public(expected: dict[str, str], timeout: float = 60) -> float | None:
    """Seconds until /api/v2/components.json shows every expected status; None on timeout."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        shown = public_statuses()
        if all(shown.get(c) == s for c, s in expected.items()):
            return time.monotonic() - began
        time.sleep(0.05)
    return None


def measure_writes(page_id: str, key: str, components: list[str], duration: int) -> dict:
    base = f"/api/v1/pages/{page_id}"
    headers = {"Authorization": f"OAuth {key}"}
    # Components in no open incident or maintenance: 3-6 toggle, 7-10 have incidents opened
    # and resolved.
    togglers, incident_components = components[2:6], components[6:10]
    _, _, body = http_get(PORT_BEACON, f"{base}/incidents/unresolved", headers)
    unresolved_before = sorted(i["id"] for i in json.loads(body))

    log(f"writes: {WRITE_THREADS} threads PATCH component statuses for {duration}s")
    patches, last, patch_problems = patch_components(base, key, togglers, duration)
    patched_visible = wait_public(last)
    log(
        f"writes: {patches['requests']} PATCHes, {patches['rps']:.0f}/s, p50 "
        f"{patches['p50_ms']:.1f} ms, p99 {patches['p99_ms']:.1f} ms, failed {patches['failed']}; "
        f"public after {patched_visible} s"
    )

    log(f"writes: {WRITE_THREADS} threads open and resolve incidents for {duration}s")
    cycles, opened, cycle_problems = open_and_resolve(base, key, incident_components, duration)
    expected = {**last, **dict.fromkeys(incident_components, "operational")}
    cycles_visible = wait_public(expected)
    log(
        f"writes: {cycles['requests']} requests, {cycles['rps']:.0f}/s, p50 "
        f"{cycles['p50_ms']:.1f} ms, p99 {cycles['p99_ms']:.1f} ms, failed {cycles['failed']}; "
        f"public after {cycles_visible} s"
    )

    shown = public_statuses()
    _, _, body = http_get(PORT_BEACON, f"{base}/incidents/unresolved", headers)
    unresolved_after = sorted(i["id"] for i in json.loads(body))
    api_statuses = {}
    for component in expected:
        _, _, body = http_get(PORT_BEACON, f"{base}/components/{component}", headers)
        api_statuses[component] = json.loads(body)["status"]
    checks = {
        "public_matches_last_status": all(shown.get(c) == s for c, s in expected.items()),
        "api_matches_last_status": api_statuses == expected,
        "public_after_patches_s": patched_visible,
        "public_after_incidents_s": cycles_visible,
        "incidents_opened": len(opened),
        "all_incidents_resolved": unresolved_after == unresolved_before,
        "failed_requests": patches["failed"] + cycles["failed"],
        "problems": (patch_problems + cycle_problems)[:20],
    }
    checks["ok"] = (
        checks["public_matches_last_status"]
        and checks["api_matches_last_status"]
        and checks["all_incidents_resolved"]
        and not checks["failed_requests"]
        and not checks["problems"]
    )
    log(f"writes: checks {json.dumps({k: v for k, v in checks.items() if k != 'problems'})}")
    return {
        "threads": WRITE_THREADS,
        "duration": duration,
        "component_patch": patches,
        "incident_cycle": cycles,
        "expected": expected,
        "checks": checks,
    }


# --- profile -------------------------------------------------------------------------------


def profile(env: dict, page_id: str, key: str, repeats: int) -> dict:
    path, query = f"/api/v1/pages/{page_id}/incidents", "limit=100"
    raw = manage_shell(env, PROFILE_CODE % (path, query, key, repeats))
    samples = raw["samples"]

    def med(fn) -> float:
        return statistics.median(fn(s) for s in samples) * 1000

    def part(name: str, key_: str = "spent"):
        return lambda s: s[key_].get(name, 0.0)

    wall = med(lambda s: s["wall"])
    # Each part: its own time minus what the parts inside it took.
    parts = {
        "API key lookup (1 query)": med(part("key")),
        "rate limit (Redis)": med(part("ratelimit")),
        "page settings (Redis)": med(part("page")),
        "incidents, updates, affected components (queries, model instances)": med(
            lambda s: (
                s["spent"].get("incidents", 0)
                - s["spent"].get("context", 0)
                - s["spent"].get("dicts", 0)
            )
        ),
        "component tree and entries (queries, dicts)": med(part("context")),
        "incident dicts (incident_object)": med(part("dicts")),
        "response validation (pydantic)": med(
            lambda s: s["spent"].get("result", 0) - s["spent"].get("render", 0)
        ),
        "JSON rendering": med(part("render")),
    }
    parts["the rest: Django, middleware, ninja's parsing, the key check"] = wall - sum(
        parts.values()
    )
    database = med(lambda s: sum(s["db"].values()))
    queries = statistics.median(sum(s["queries"].values()) for s in samples)
    redis_ms = med(lambda s: sum(s["redis"].values()))
    commands = statistics.median(sum(s["commands"].values()) for s in samples)
    by_part_db = {
        name: statistics.median(s["db"].get(name, 0.0) for s in samples) * 1000
        for name in ("key", "incidents", "context", "dicts", "rest")
    }
    by_part_queries = {
        name: statistics.median(s["queries"].get(name, 0) for s in samples)
        for name in ("key", "incidents", "context", "dicts", "rest")
    }
    return {
        "path": f"{path}?{query}",
        "rate_limit": HUGE_LIMIT,
        "bytes": raw["bytes"],
        "repeats": raw["repeats"],
        "wall_ms": wall,
        "parts_ms": parts,
        "database_ms": database,
        "queries": queries,
        "database_ms_by_part": by_part_db,
        "queries_by_part": by_part_queries,
        "redis_ms": redis_ms,
        "redis_commands": commands,
        "profiled_requests": raw["profiled_requests"],
        "cprofile_wall_ms": raw["profiled_wall_ms"],
        "cprofile_hotspots": raw["hotspots"],
        "model_instances": raw["instances"],
        "cprofile_top": raw["top_tottime"],
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
    parser.add_argument("--profile-repeats", type=int, default=50)
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
    ok = False
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

        procs.start("worker", shlex.split(WORKER_CMD.format(bin=BIN)), env)
        servers = [
            start_beacon(procs, args.server, env, PORT_BEACON, "beacon"),
            start_beacon(procs, args.server, limited_env, PORT_LIMITED, "beacon-limited"),
        ]
        for port in (PORT_BEACON, PORT_LIMITED):  # every worker: connections, imports
            for path, query in paths.values():
                for _ in range(6):
                    http_get(port, f"{path}?{query}", {"Authorization": f"OAuth {key}"})
        manifest, sizes = capture(paths, key, tmp)
        start_minimal(procs, args.server, manifest, PORT_MINIMAL)
        result["sizes"] = sizes
        log("sizes: " + ", ".join(f"{k} {v['bytes']:,} B" for k, v in sizes.items()))

        result["reads"] = measure_reads(paths, key, duration, minimal_duration, rounds, servers)
        log(f"profiling GET {base}/incidents?limit=100 in-process")
        result["profile"] = profile(limited_env, page_id, key, args.profile_repeats)
        log(
            f"profile: {result['profile']['wall_ms']:.1f} ms per request; "
            + ", ".join(f"{k} {v:.2f}" for k, v in result["profile"]["parts_ms"].items())
        )
        result["writes"] = measure_writes(page_id, key, components, write_duration)
        result["load_end"] = loadavg()
        result["finished_in_s"] = round(time.monotonic() - began, 1)
        RESULTS_DIR.mkdir(exist_ok=True)
        out = RESULTS_DIR / f"api-{started:%Y%m%dT%H%M%SZ}.json"
        out.write_text(json.dumps(result, indent=2, default=str))
        log(f"results: {out.relative_to(ROOT)}")
        if not args.no_doc:
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
    if not ok:
        raise SystemExit(1)


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
    ds, prof, writes = result["dataset"], result["profile"], result["writes"]
    reads = result["reads"]
    table = []
    for row in reads:
        b, m, lim = row["beacon"], row["minimal"], row.get("limited")
        size = result["sizes"][row["endpoint"]]["bytes"]
        limited = f"{_n(lim['rps'])} | {_pct(row['ratio_limited'])}" if lim is not None else "– | –"
        table.append(
            f"| `…{row['label']}` | {size / 1024:,.1f} KiB | {row['connections']} "
            f"| **{_n(b['rps'])}** | {_n(b['p50_ms'], 1)} ms | {_n(b['p99_ms'], 1)} ms "
            f"| {b['non_2xx']} / {b['socket_errors']} | {limited} | {_n(m['rps'])} "
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

    parts, wall = prof["parts_ms"], prof["wall_ms"]
    limit_ms = parts["rate limit (Redis)"]
    m = result["machine"]
    spread = max(
        (max(r["beacon"]["rps_all"]) - min(r["beacon"]["rps_all"])) / r["beacon"]["rps"]
        for r in reads
        if r["beacon"].get("rps_all") and r["beacon"]["rps"]
    )
    budgets = [
        m["nproc"] * 1000 / r["beacon"]["rps"]
        for r in reads
        if r["connections"] == CONNECTIONS[0] and r["beacon"]["rps"]
    ]
    profile_rows = "\n".join(
        f"| {name} | {ms:.1f} ms | {ms / wall:.0%} |"
        for name, ms in sorted(parts.items(), key=lambda i: -i[1])
    )
    instances = prof["model_instances"]
    hotspots = "\n".join(
        f"- {h['label']}: {h['calls']:,.0f} call{'' if round(h['calls']) == 1 else 's'}, "
        f"{h['share']:.0%}"
        for h in sorted(prof["cprofile_hotspots"], key=lambda h: -h["share"])
    )
    query_part = next(k for k in parts if k.startswith("incidents, updates"))
    query_db = prof["database_ms_by_part"]["incidents"]
    repeated = instances.get("Component", 0) > 2 * ds["components"]

    kinds = "\n".join(
        f"| {kind} | {k['requests']:,} | {k['rps']:.1f} | {_n(k['p50_ms'], 1)} ms "
        f"| {_n(k['p99_ms'], 1)} ms | {k['failed']} |"
        for part in (writes["component_patch"], writes["incident_cycle"])
        for kind, k in part["kinds"].items()
    )
    checks = writes["checks"]
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
        f"rounds: {result['rounds']}; the table gives the medians. The targets:",
        "",
        "- *Beacon*: `API_RATE_LIMIT_PER_MINUTE=0`. With 0, `statuspage.lib.ratelimit.hit_rolling` "
        "returns before it talks to Redis: these numbers leave the limiter out.",
        "- *Limit 10⁹*: the same Beacon with a limit no run reaches, so every request is counted "
        "as in production: four Redis round trips (`SET NX` and `EXISTS` then `INCR` on this "
        "minute's counter, `GET` of the last minute's). Measured at 16 connections only (its "
        "cost does not depend on the concurrency); its requests/s and their share of Beacon's.",
        "- *Minimal*: `bench/minimal_app.py` under the same server command, returning the bytes "
        "Beacon answered for the endpoint from memory. Beacon / minimal is what the key check, "
        "the queries, building the dicts, pydantic's validation of the response and JSON "
        "rendering cost together (100 % would mean nothing).",
        "",
        "| Endpoint | Size | Conns | Beacon req/s | p50 | p99 | non-2xx / errors "
        "| Limit 10⁹ req/s | / Beacon | Minimal req/s | Beacon / minimal |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *table,
        "",
        f"Beacon answers at {_pct(min(ratios), 1)} to {_pct(max(ratios), 1)} of the minimal "
        "view's rate. Unlike the public pages, the management API is not served from "
        "snapshots: each request checks its key and builds its answer from the database, and "
        "that work, not the framework or the server, sets the pace. It is CPU-bound: at "
        f"{CONNECTIONS[-1]} connections Beacon serves {_pct(min(scaling))} to "
        f"{_pct(max(scaling))} of its rate at {CONNECTIONS[0]}, and the extra connections only "
        f"wait their turn (p50 ≈ {CONNECTIONS[-1]} / req/s). With the limiter counting, Beacon "
        f"keeps {_pct(min(limiter))} to {_pct(max(limiter))} of its requests/s (median "
        f"{_pct(statistics.median(limiter))}). The profile below puts the limiter at "
        f"{limit_ms:.1f} ms a request (Python and four Redis round trips); a request of these "
        f"endpoints takes the machine {min(budgets):.0f} to {max(budgets):.0f} ms "
        f"({m['nproc']} cores / req/s at 16 connections, wrk and PostgreSQL included), so the "
        f"limiter should cost {_pct(limit_ms / max(budgets))} to "
        f"{_pct(limit_ms / min(budgets))} of it: less than the spread between the rounds of one "
        f"target (up to {_pct(spread)} of its median here), so the shares measured above are "
        "that noise around a small cost.",
        "",
        f"**Writes.** {writes['threads']} client threads (Python, one keep-alive connection "
        f"each) for {writes['duration']} s: first each thread PATCHes its own component to "
        '`major_outage` and back (`{"component": {"status": …}}`); then each thread opens '
        "an incident on its own component (POST, `major_outage`) and resolves it (PATCH, "
        "`resolved`, the component back to `operational`), with `deliver_notifications: false` "
        "(subscriber mail is measured in its own section).",
        "",
        "| Request | Requests | req/s | p50 | p99 | Failed |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        kinds,
        "",
        "Afterwards `/api/v2/components.json` showed every component's last status: "
        f"{_yes(checks['public_matches_last_status'])} "
        f"({_n(checks['public_after_patches_s'], 2)} s after the PATCH load, "
        f"{_n(checks['public_after_incidents_s'], 2)} s after the incident load); the API "
        f"agreed: {_yes(checks['api_matches_last_status'])}; the {checks['incidents_opened']} "
        f"incidents opened were all resolved: {_yes(checks['all_incidents_resolved'])}; "
        f"failed requests: {checks['failed_requests']}.",
        "",
        f"**Where a list of 100 incidents goes.** `GET …/incidents?limit=100` "
        f"({prof['bytes'] / 1024:,.0f} KiB), {prof['repeats']} times in one process through "
        "Django's WSGI handler (every middleware, the key, the limit of 10⁹), each part timed "
        "by a wrapper around the function doing it; medians, and a part's time leaves out the "
        "parts inside it:",
        "",
        "| Part | Per request | Share |",
        "| --- | ---: | ---: |",
        profile_rows,
        f"| **Total** | **{wall:.1f} ms** | |",
        "",
        f"Of the {wall:.0f} ms, PostgreSQL (the driver's `execute`: the query and the transfer) "
        f"takes {prof['database_ms']:.1f} ms for {prof['queries']:.0f} queries, of which "
        f"{query_db:.1f} ms for the {prof['queries_by_part']['incidents']:.0f} queries of the "
        f"incidents' part; Redis {prof['redis_ms']:.1f} ms for {prof['redis_commands']:.0f} "
        f"commands. The rest of the incidents' part ({parts[query_part] - query_db:.0f} ms) is "
        "Python turning rows into values and model instances and wiring the prefetched lists: "
        "one request builds "
        + ", ".join(f"{n:,} {model}" for model, n in instances.items())
        + " instances"
        + (
            f" — {instances.get('Component', 0):,} Component rows for a page of "
            f"{ds['components']}: each affected component and each incident's components are "
            "loaded again, with their groups, although the dicts take them from the page's "
            "component list, built once per request."
            if repeated
            else "."
        )
        + " Response validation and JSON rendering together are "
        f"{_pct((parts['response validation (pydantic)'] + parts['JSON rendering']) / wall)} "
        "of the request.",
        "",
        f"Under cProfile ({prof['profiled_requests']} requests, {prof['cprofile_wall_ms']:.0f} ms "
        "each with the profiler on, which slows Python code more than C: shares, not times), "
        "these hot spots (time including what they call, per request):",
        "",
        hotspots,
    ]
    return "\n".join(lines)


def _yes(value: bool) -> str:
    return "yes" if value else "**no**"


def _n(value, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _pct(value, digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}%}"


if __name__ == "__main__":
    os.chdir(ROOT)
    main()

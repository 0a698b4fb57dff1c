"""Where a management API write goes: in one process, through Django's WSGI handler.

    .venv/bin/python bench/api_writes_profile.py [--writes 200] [--db NAME] [--redis-db N]
        [--keep] [--reseed]

The two writes of bench/api.py's write load, each `--writes` times: PATCH a component's status
(`{"component": {"status": …}}`, major_outage and back), and post an incident update
(`PATCH …/incidents/{id}` with status identified or monitoring, a body and
deliver_notifications false) on 20 open incidents in turn. The page is bench/api.py's (50
components, 1,000 past incidents with 2 to 4 updates, 500 subscribers), on PostgreSQL and
Redis, DEBUG off, the rate limit 10^9 (counted in Redis on every request, as in production).

No worker runs: before each write the "rebuild queued" mark is cleared, as a worker does when
it starts the previous rebuild, so every write pays for asking the broker (as it does under
load), and the queued messages are removed at the end.

Each write is timed in parts by wrappers around the functions doing them (a part's time
leaves out the parts inside it), with every query (its time, its part) and Redis command.
Prints medians per part, the queries of one write of each kind, and a JSON line.
The database (default beacon_bench_writes) is seeded once and kept with --keep.
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from api import SEED_CODE
from run import BIN, ROOT, beacon_env, log, manage_shell, pg_execute, run_cmd, run_seed

COMPONENTS, INCIDENTS, SUBSCRIBERS, OPEN_INCIDENTS = 50, 1000, 500, 20


def seed(env: dict, db: str) -> None:
    import redis

    client = redis.Redis.from_url(env["REDIS_URL"])
    for key in client.scan_iter(match=f"*{env['CACHE_KEY_PREFIX']}*", count=1000):
        client.delete(key)  # what the cache kept of an earlier database (its page settings)
    pg_execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    pg_execute(f"CREATE DATABASE {db}")
    run_cmd([str(BIN / "python"), "manage.py", "migrate", "--noinput", "-v0"], env=env)
    log(f"bench/seed.py: {json.dumps(run_seed(env, COMPONENTS, INCIDENTS))}")
    log(f"seeded: {json.dumps(manage_shell(env, SEED_CODE % SUBSCRIBERS)['counts'])}")


def profiled(writes: int, profile_dir: Path | None) -> dict:
    """In the child process: Django set up on the seeded database."""
    import cProfile
    import io
    import time
    from collections import defaultdict

    import django

    django.setup()
    import redis.client
    from django.core.cache import cache
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection
    from django.db.backends.base.base import BaseDatabaseWrapper

    import components.services
    import components.status
    import incidents.notify.events
    import incidents.services
    from components.models import Component, ComponentStatus
    from incidents import enqueue
    from incidents.models import Incident
    from statuspage import audit
    from statuspage.api_v1 import base, generation, keys
    from statuspage.api_v1 import components as components_view
    from statuspage.api_v1 import incidents as incidents_view
    from statuspage.models import ApiKey, PageSettings
    from statuspage.public.snapshots import keys as snapshot_keys

    handler = WSGIHandler()
    page = PageSettings.load()
    owner = ApiKey.objects.select_related("owner").first().owner
    key, raw = keys.api_key_create(owner=owner, name="bench/api_writes_profile.py")
    base_path = f"/api/v1/pages/{page.public_id}"

    # Open incidents to post updates to, each on its own component (made once, kept).
    targets = list(
        Incident.objects.filter(name__startswith="Writes profile ").order_by("pk")[:OPEN_INCIDENTS]
    )
    all_components = list(Component.objects.in_page_order())
    for n in range(len(targets), OPEN_INCIDENTS):
        targets.append(
            incidents.services.incident_create(
                name=f"Writes profile {n}",
                status="investigating",
                body="Looking into it.",
                component_statuses={all_components[n]: ComponentStatus.PARTIAL_OUTAGE},
                deliver_notifications=False,
            )
        )
    component = all_components[-1]

    def environ(method: str, path: str, body: bytes) -> dict:
        return {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_AUTHORIZATION": "OAuth " + raw,
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
            "wsgi.version": (1, 0),
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }

    # Exclusive times per part: a wrapper's time minus the wrapped parts inside it.
    spent: dict[str, float] = defaultdict(float)
    db_time: dict[str, float] = defaultdict(float)
    db_count: dict[str, int] = defaultdict(int)
    rd_time: dict[str, float] = defaultdict(float)
    rd_count: dict[str, int] = defaultdict(int)
    statements: list[tuple[str, str, float]] = []
    stack: list[list] = [["rest", 0.0]]

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            frame = [name, 0.0]
            stack.append(frame)
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - began
                stack.pop()
                spent[name] += elapsed - frame[1]
                stack[-1][1] += elapsed

        return wrapper

    def in_database(execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - began
            db_time[stack[-1][0]] += elapsed
            db_count[stack[-1][0]] += 1
            statements.append((stack[-1][0], sql, elapsed))

    execute_command = redis.client.Redis.execute_command

    def in_redis(self, *args, **options):
        began = time.perf_counter()
        try:
            return execute_command(self, *args, **options)
        finally:
            rd_time[stack[-1][0]] += time.perf_counter() - began
            rd_count[stack[-1][0]] += 1

    redis.client.Redis.execute_command = in_redis
    patch = [
        (base._KeyChecks, "authenticate", "key check and rate limit"),
        (base, "api_key_authenticate", "API key lookup"),
        (components_view, "page_or_404", "page settings"),
        (incidents_view, "page_or_404", "page settings"),
        # Before the write: the object the URL names.
        (components_view, "_component", "view: the component (before)"),
        (incidents_view, "_get", "view: the incident with its timeline"),
        # The writes.
        (components.services, "component_update", "service: component_update"),
        (components_view, "component_status_state", "service: arbiter (claims, lock)"),
        (incidents.services, "component_status_state", "service: arbiter (claims, lock)"),
        (components.status, "component_claims", "service: component_claims"),
        (components.status, "component_set_status", "service: component_set_status"),
        (components.services, "_account_uptime", "service: uptime accounting"),
        (incidents_view, "_change", "view: _change (body to services)"),
        (incidents.services, "incident_post_update", "service: incident_post_update"),
        (incidents.services, "event_for_update", "notifications: event (outbox)"),
        (incidents.notify.events, "event_for_status_change", "notifications: event (outbox)"),
        (enqueue, "expand_notification_event", "notifications: broker"),
        # What a commit costs, and what runs after it.
        (BaseDatabaseWrapper, "commit", "commit"),
        (snapshot_keys, "publish_change", "after commit: publish_change (public outputs)"),
        (snapshot_keys, "schedule_rebuild", "after commit: rebuild .delay() (broker)"),
        (generation, "bump", "after commit: API generation bump"),
        (audit, "_record_api_write", "audit trail (the answer parsed, a row)"),
        # The answer (before kept fragments: _one; with them: _one_text).
        (components_view, "_entry", "response: component entry"),
        (incidents_view, "_one", "response: incident object"),
        (incidents_view, "_one_text", "response: incident object"),
    ]
    try:  # the management API's kept fragments, marked stale in the writing transaction
        from statuspage.api_v1 import fragments
    except ImportError:
        pass
    else:
        patch.append((fragments, "_mark", "API fragments marked stale"))
    for owner_, name, part in patch:
        if hasattr(owner_, name):  # the checkout profiled may predate a part
            setattr(owner_, name, timed(part, getattr(owner_, name)))

    def request(method: str, path: str, payload: dict) -> tuple[str, bytes]:
        seen = []
        body = json.dumps(payload).encode()
        response = handler(environ(method, path, body), lambda s, h, e=None: seen.append(s))
        content = b"".join(response)
        response.close()
        return seen[0], content

    def run(label: str, make) -> dict:
        samples = []
        kept_sql: list = []
        profiler = cProfile.Profile() if profile_dir else None
        for n in range(writes):
            method, path, payload = make(n)
            for table in (spent, db_time, db_count, rd_time, rd_count):
                table.clear()
            statements.clear()
            cache.delete(snapshot_keys.REBUILD_QUEUED_KEY)  # as the worker does when it starts
            began = time.perf_counter()
            with connection.execute_wrapper(in_database):
                if profiler is not None:
                    profiler.enable()
                status, content = request(method, path, payload)
                if profiler is not None:
                    profiler.disable()
            wall = time.perf_counter() - began
            if not status.startswith("200"):
                raise SystemExit(f"{label}: {status} {content[:500]!r}")
            samples.append(
                {
                    "wall": wall,
                    "spent": dict(spent),
                    "db": dict(db_time),
                    "queries": dict(db_count),
                    "redis": dict(rd_time),
                    "commands": dict(rd_count),
                }
            )
            if n == writes // 2:
                kept_sql = list(statements)
        if profiler is not None:
            profile_dir.mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(str(profile_dir / f"{label.split(' (')[0].replace(' ', '-')}.prof"))
        return summarize(label, samples, kept_sql)

    def summarize(label: str, samples: list, kept_sql: list) -> dict:
        def med(fn) -> float:
            return statistics.median(fn(s) for s in samples)

        wall = med(lambda s: s["wall"]) * 1000
        names = sorted({k for s in samples for k in (*s["spent"], *s["queries"], *s["commands"])})
        parts = {}
        for name in names:
            parts[name] = {
                "ms": med(lambda s, n=name: s["spent"].get(n, 0.0)) * 1000,
                "queries": med(lambda s, n=name: s["queries"].get(n, 0)),
                "db_ms": med(lambda s, n=name: s["db"].get(n, 0.0)) * 1000,
                "redis": med(lambda s, n=name: s["commands"].get(n, 0)),
                "redis_ms": med(lambda s, n=name: s["redis"].get(n, 0.0)) * 1000,
            }
        timed_total = med(lambda s: sum(s["spent"].values())) * 1000
        parts.setdefault("rest", {"ms": 0.0, "queries": 0, "db_ms": 0.0, "redis": 0, "redis_ms": 0})
        parts["rest"]["ms"] += wall - timed_total
        return {
            "write": label,
            "writes": len(samples),
            "wall_ms_median": wall,
            "wall_ms_p90": statistics.quantiles([s["wall"] for s in samples], n=10)[-1] * 1000,
            "queries_median": med(lambda s: sum(s["queries"].values())),
            "db_ms_median": med(lambda s: sum(s["db"].values())) * 1000,
            "redis_commands_median": med(lambda s: sum(s["commands"].values())),
            "redis_ms_median": med(lambda s: sum(s["redis"].values())) * 1000,
            "parts": parts,
            "sql": [(part, sql[:160], round(t * 1000, 3)) for part, sql, t in kept_sql],
        }

    statuses = [ComponentStatus.MAJOR_OUTAGE, ComponentStatus.OPERATIONAL]
    results = [
        run(
            "PATCH component status",
            lambda n: (
                "PATCH",
                f"{base_path}/components/{component.public_id}",
                {"component": {"status": statuses[n % 2]}},
            ),
        ),
        run(
            "PATCH incident (post an update)",
            lambda n: (
                "PATCH",
                f"{base_path}/incidents/{targets[n % len(targets)].public_id}",
                {
                    "incident": {
                        "status": ("identified", "monitoring")[(n // len(targets)) % 2],
                        "body": f"Update {n}: we are on it.",
                        "deliver_notifications": False,
                    }
                },
            ),
        ),
    ]
    keys.api_key_revoke(key=key)
    return {"results": results}


def report(result: dict) -> None:
    for item in result["results"]:
        print(
            f"\n## {item['write']}: {item['writes']} writes, "
            f"median {item['wall_ms_median']:.1f} ms "
            f"(p90 {item['wall_ms_p90']:.1f}), {item['queries_median']:.0f} queries "
            f"({item['db_ms_median']:.1f} ms), {item['redis_commands_median']:.0f} Redis "
            f"commands ({item['redis_ms_median']:.1f} ms)\n"
        )
        print("| Part | ms | queries | query ms | Redis | Redis ms |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        ordered = sorted(item["parts"].items(), key=lambda kv: -kv[1]["ms"])
        for name, p in ordered:
            print(
                f"| {name} | {p['ms']:.2f} | {p['queries']:.0f} | {p['db_ms']:.2f} | "
                f"{p['redis']:.0f} | {p['redis_ms']:.2f} |"
            )
        print("\nQueries of one write:")
        for part, sql, ms in item["sql"]:
            print(f"  {ms:7.3f} ms  [{part}] {sql}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--db", default="beacon_bench_writes")
    parser.add_argument("--redis-db", type=int, default=5)
    parser.add_argument("--reseed", action="store_true", help="seed again even if the db exists")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--tree", type=Path, default=ROOT, help="profile Beacon's code in this checkout (A/B)"
    )
    parser.add_argument(
        "--cprofile",
        type=Path,
        help="also run each write kind under cProfile, keeping <dir>/<write>.prof, and print "
        "the functions that took the most time of their own",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("BENCHJSON " + json.dumps(profiled(args.writes, args.cprofile)))
        return

    var_dir = ROOT / "var" / "bench-writes"
    var_dir.mkdir(parents=True, exist_ok=True)
    env = beacon_env(args.db, var_dir)
    env.update(
        REDIS_URL=f"redis://127.0.0.1:6379/{args.redis_db}",
        CACHE_KEY_PREFIX=f"beacon-bench-writes-{args.db}",
        API_RATE_LIMIT_PER_MINUTE=str(10**9),
    )
    exists = pg_execute(f"SELECT 1 FROM pg_database WHERE datname = '{args.db}'")
    if args.reseed or not exists:
        log(f"seeding {args.db}")
        seed(env, args.db)
    try:
        output = subprocess.run(
            [
                str(BIN / "python"),
                str(Path(__file__).resolve()),
                "--child",
                "--writes",
                str(args.writes),
                *(["--cprofile", str(args.cprofile.resolve())] if args.cprofile else []),
            ],
            env={**env, "PYTHONPATH": str(args.tree.resolve())},
            cwd=args.tree,
            capture_output=True,
            text=True,
        )
        if output.returncode:
            raise SystemExit(f"the profile failed:\n{output.stderr[-3000:]}")
        output = output.stdout
    finally:
        import redis

        client = redis.Redis.from_url(env["REDIS_URL"])
        for queue in ("snapshots", "default", "notify", "checks"):
            client.delete(queue)  # the rebuild asks no worker took
        if not args.keep:
            pg_execute(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")
    result = json.loads(next(ln for ln in output.splitlines() if ln.startswith("BENCHJSON "))[10:])
    report(result)
    if args.cprofile:
        import pstats

        for path in sorted(args.cprofile.resolve().glob("*.prof")):
            print(f"\n## cProfile: {path.name}, by own time")
            pstats.Stats(str(path)).sort_stats("tottime").print_stats(30)
    print("\nBENCHJSON " + json.dumps(result))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()

"""What a made-up URL costs, side by side with a cached public page, in one run.

    .venv/bin/python bench/misses.py [--duration 10] [--rounds 3] [--no-doc]

An issue said: "each made-up /incidents/<code>/ or /history/?page=N costs a database query
(about 320 requests/s against 4,800 for cached pages)". This checks it. It creates the
database beacon_bench_misses (dropped at the start and the end), seeds 20 components and 200
past incidents with bench/seed.py (plus its two open incidents and a maintenance), and starts
Beacon under gunicorn with its config (`-c python:statuspage.gunicorn_conf statuspage.wsgi
--workers 2`, sync workers, DEBUG off; `--no-control-socket`, so ~/.gunicorn is left to
others) on PostgreSQL and Redis db 8 (flushed at the start and the end; no other db is
touched), on a free port, with SNAPSHOT_RENDER_ON_WRITE off (no worker) and STATIC_MANIFEST
off (nothing is written to the shared staticfiles/). `/`, the
incident page and one miss of each kind are warmed. Then, per round, `wrk -t2 -c16` for
--duration seconds on each of:

- `/`, the cached status page (bench/wrk/fixed.lua);
- `/incidents/<12 random characters>/`, a new made-up code per request (bench/wrk/misses.lua);
- `/history/?page=<100000..999999>`, a made-up page of history per request (the same);
- the open incident's page, a real one, for reference (fixed.lua).

Each response's status is counted (404 expected for the misses, 200 for the others), and
the bench database's transactions in pg_stat_database (xact_commit + xact_rollback) are read
before and after every run. The server runs with CONN_MAX_AGE=0: a backend's counts reach
pg_stat_database when it exits, and an idle persistent one would hold them back for up to
10 s, into the next run. The runs of the two pages that exist give the background (each
worker's database probe, a `SELECT 1` every 5 s on its own connection); what the misses run
beyond it, per request, is the "queries per miss".

Medians of the rounds; results in bench/results/misses-<time>.json and the "Misses" section
of docs/performance.md (between the bench:misses markers). About three minutes. Everything
it starts is stopped in a finally block, by process group.
"""

import argparse
import contextlib
import json
import os
import random
import re
import shlex
import shutil
import statistics
import string
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import redis
from run import (
    BIN,
    DOC,
    HOST,
    RESULTS_DIR,
    ROOT,
    Processes,
    beacon_env,
    free_port,
    http_get,
    loadavg,
    log,
    machine,
    median_result,
    pg_execute,
    run_cmd,
    run_seed,
    wait_http,
    write_doc_section,
    wrk_argv,
    wrk_env,
    wrk_result,
)

DB = "beacon_bench_misses"
REDIS_DB = 8
COMPONENTS, INCIDENTS = 20, 200
THREADS, CONNECTIONS = 2, 16
SERVER_CMD = (
    "{bin}/gunicorn -c python:statuspage.gunicorn_conf statuspage.wsgi "
    "--bind 127.0.0.1:{port} --workers 2 --no-control-socket"
)
# Rebuilds the workers log; a made-up path's means the database was asked whether it exists.
REBUILT_MISS = re.compile(rb"snapshot rebuilt path=(/incidents/\w+/|/history/\?page=\d+) ")
SETTLE_SECONDS = 1.0  # after a run: the last connections close and their backends report
DOC_START = "<!-- bench:misses:start -->"
DOC_END = "<!-- bench:misses:end -->"
DOC_HEADING = "## Misses"
ISSUE_QUOTE = (
    "each made-up /incidents/<code>/ or /history/?page=N costs a database query "
    "(about 320 requests/s against 4,800 for cached pages)"
)
ISSUE_RATIO = 320 / 4800

# name: (label, wrk script, its argument, expected status); measured in this order.
TARGETS = {
    "cached": ("`/` (cached)", "fixed.lua", None, 200),
    "incident_miss": ("`/incidents/<random 12 chars>/`", "misses.lua", "incident", 404),
    "history_miss": ("`/history/?page=<random 100000–999999>`", "misses.lua", "history", 404),
    "incident": ("`/incidents/<real code>/` (reference)", "fixed.lua", None, 200),
}
MISSES = ("incident_miss", "history_miss")


def redis_flush() -> None:
    redis.Redis(host=HOST, port=6379, db=REDIS_DB).flushdb()


def pg_counters() -> dict:
    ((transactions, sessions, returned, fetched),) = pg_execute(
        "SELECT xact_commit + xact_rollback, sessions, tup_returned, tup_fetched "
        f"FROM pg_stat_database WHERE datname = '{DB}'"
    )
    return {
        "transactions": transactions,
        "sessions": sessions,
        "tup_returned": returned,
        "tup_fetched": fetched,
    }


def made_up_code() -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=12))


def warm(port: int, incident_path: str) -> None:
    """Every worker renders or loads `/` and the incident page, and learns what exists."""
    expected = {
        "/": 200,
        incident_path: 200,
        f"/incidents/{made_up_code()}/": 404,
        f"/history/?page={random.randint(100000, 999999)}": 404,
    }
    for _ in range(10):
        for path, status in expected.items():
            got, _, _ = http_get(port, path)
            if got != status:
                raise RuntimeError(f"GET {path} answered {got}, not {status}")


def one_run(name: str, base_url: str, incident_path: str, duration: int) -> dict:
    _, script, argument, _ = TARGETS[name]
    url = base_url + (incident_path if name == "incident" else "/")
    argv = wrk_argv(url, CONNECTIONS, duration, script, THREADS)
    if argument:
        argv += ["--", argument]
    before = pg_counters()
    began = time.monotonic()
    output = run_cmd(argv, env=wrk_env(True), timeout=duration + 60)
    time.sleep(SETTLE_SECONDS)
    after = pg_counters()
    result = wrk_result(output)
    result["command"] = shlex.join(argv)
    result["wall_s"] = round(time.monotonic() - began, 2)
    result["database"] = {key: after[key] - before[key] for key in after}
    return result


def miss_renders(log_path: Path, offset: int, real_path: str) -> dict:
    """The made-up paths the workers rendered (asking the database) during the runs."""
    renders: dict[str, int] = {"incident_miss": 0, "history_miss": 0}
    with log_path.open("rb") as handle:
        handle.seek(offset)
        for line in handle:
            match = REBUILT_MISS.search(line)
            path = match.group(1).decode() if match else real_path
            if path != real_path:
                renders["history_miss" if path.startswith("/history/") else "incident_miss"] += 1
    return renders


def summarise(runs: dict[str, list[dict]]) -> dict:
    summary = {}
    for name, results in runs.items():
        label, _, _, expected = TARGETS[name]
        codes: dict[int, int] = {}
        for r in results:
            for code, count in r["codes"].items():
                codes[code] = codes.get(code, 0) + count
        database = {key: sum(r["database"][key] for r in results) for key in results[0]["database"]}
        merged = median_result(results)
        summary[name] = {
            "label": label,
            "expected_status": expected,
            "rps": merged["rps"],
            "rps_all": [round(r["rps"], 1) for r in results],
            "p50_ms": merged["p50_ms"],
            "p99_ms": merged["p99_ms"],
            "p50_ms_all": [r["p50_ms"] for r in results],
            "p99_ms_all": [r["p99_ms"] for r in results],
            "requests": merged["requests"],
            "socket_errors": merged["socket_errors"],
            "codes": codes,
            "as_expected": set(codes) == {expected} and merged["socket_errors"] == 0,
            "wall_s": sum(r["wall_s"] for r in results),
            "database": database,
            "transactions_per_request": database["transactions"] / merged["requests"],
        }
    # The background: what PostgreSQL saw while the pages that exist were loaded.
    known = [summary[name] for name in TARGETS if name not in MISSES]
    background = sum(s["database"]["transactions"] for s in known) / sum(s["wall_s"] for s in known)
    cached = summary["cached"]
    for s in summary.values():
        s["ratio_to_cached"] = s["rps"] / cached["rps"] if cached["rps"] else None
        s["background_per_s"] = background
        s["background_transactions"] = background * s["wall_s"]
        beyond = s["database"]["transactions"] - s["background_transactions"]
        s["transactions_beyond_background"] = beyond
        s["queries_per_request"] = max(beyond, 0) / s["requests"] if s["requests"] else None
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-doc", action="store_true", help="leave docs/performance.md alone")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()

    began = time.monotonic()
    started = datetime.now(UTC)
    tmp = Path(tempfile.mkdtemp(prefix="beacon-bench-misses-"))
    procs = Processes(tmp)
    env = beacon_env(DB, tmp / "var")
    env.update(
        REDIS_URL=f"redis://{HOST}:6379/{REDIS_DB}",
        CACHE_KEY_PREFIX="beacon-bench-misses",
        ALLOWED_HOSTS=HOST,
        SNAPSHOT_RENDER_ON_WRITE="false",
        STATIC_MANIFEST="false",
        CONN_MAX_AGE="0",
    )
    ok = False
    try:
        result = {
            "started": started.isoformat(timespec="seconds"),
            "argv": ["bench/misses.py", *sys.argv[1:]],
            "machine": machine(),
            "load_start": loadavg(),
            "duration": args.duration,
            "rounds": args.rounds,
            "threads": THREADS,
            "connections": CONNECTIONS,
        }
        pg_execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        pg_execute(f"CREATE DATABASE {DB}")
        redis_flush()
        log(f"migrating {DB}")
        run_cmd([str(BIN / "python"), "manage.py", "migrate", "--noinput", "-v0"], env=env)
        log(f"seeding {COMPONENTS} components, {INCIDENTS} past incidents")
        seeded = run_seed(env, COMPONENTS, INCIDENTS)
        result["dataset"] = seeded
        # Before autovacuum finds the new tables in the middle of a run.
        pg_execute("VACUUM (ANALYZE)", dbname=DB)
        incident_path = f"/incidents/{seeded['incident_code']}/"

        port = free_port()
        command = SERVER_CMD.format(bin=BIN, port=port)
        result["server_command"] = command.replace(f"{BIN}/", "")
        server = procs.start("gunicorn", shlex.split(command), env)
        wait_http(port, "/", proc=server)
        warm(port, incident_path)
        time.sleep(SETTLE_SECONDS)
        log(f"gunicorn on port {port}, warmed; {args.rounds} rounds of {args.duration} s each")
        log_offset = server.log_path.stat().st_size

        base_url = f"http://{HOST}:{port}"
        runs: dict[str, list[dict]] = {name: [] for name in TARGETS}
        for number in range(1, args.rounds + 1):
            for name in TARGETS:
                r = one_run(name, base_url, incident_path, args.duration)
                runs[name].append(r)
                log(
                    f"round {number} {name}: {r['rps']:,.0f} req/s, p50 {r['p50_ms']:.1f} ms, "
                    f"p99 {r['p99_ms']:.1f} ms, codes {r['codes']}, "
                    f"{r['database']['transactions']} transactions"
                )
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited during the runs; see {server.log_path}")
        result["runs"] = runs
        result["miss_renders"] = miss_renders(server.log_path, log_offset, incident_path)
        result["summary"] = summarise(runs)
        result["load_end"] = loadavg()
        result["finished_in_s"] = round(time.monotonic() - began, 1)
        print_table(result["summary"])

        RESULTS_DIR.mkdir(exist_ok=True)
        out = RESULTS_DIR / f"misses-{started:%Y%m%dT%H%M%SZ}.json"
        out.write_text(json.dumps(result, indent=2, default=str))
        log(f"results: {out.relative_to(ROOT)}")
        if not args.no_doc:
            write_doc(result, out)
            log(f"updated {DOC.relative_to(ROOT)}")
        ok = all(s["as_expected"] for s in result["summary"].values())
        if not ok:
            log("a path answered other statuses than expected, or wrk saw socket errors")
    finally:
        procs.stop_all()
        with contextlib.suppress(Exception):
            redis_flush()
        with contextlib.suppress(Exception):
            pg_execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        if ok and not args.keep_logs:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"logs kept in {tmp}")
    if not ok:
        raise SystemExit(1)


def print_table(summary: dict) -> None:
    print(
        f"\n{'path':<40} {'req/s':>8} {'/cached':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'codes':<16} {'xacts':>6} {'queries/req':>11}"
    )
    for s in summary.values():
        codes = ",".join(f"{c}:{n}" for c, n in sorted(s["codes"].items()))
        print(
            f"{s['label'].replace('`', ''):<40} {s['rps']:>8,.0f} {s['ratio_to_cached']:>8.1%} "
            f"{s['p50_ms']:>7.1f} {s['p99_ms']:>7.1f} {codes:<16} "
            f"{s['database']['transactions']:>6} {s['queries_per_request']:>11.5f}"
        )
    print()


# --- the report ----------------------------------------------------------------------------


def write_doc(result: dict, out: Path) -> None:
    write_doc_section(DOC_START, DOC_END, DOC_HEADING, render(result, out), after="## Recovery")


def render(result: dict, out: Path) -> str:
    s, m = result["summary"], result["machine"]
    cached = s["cached"]
    rows = []
    for name, t in s.items():
        codes = ", ".join(f"{n:,} × {c}" for c, n in sorted(t["codes"].items()))
        if t["socket_errors"]:
            codes += f", {t['socket_errors']:,} socket errors"
        ratio = "1" if name == "cached" else f"{t['ratio_to_cached']:.2f}"
        if name not in MISSES:
            queries = "(the background)"
        elif q := t["queries_per_request"]:
            queries = f"**{q:.5f}** (1 in {1 / q:,.0f})"
        else:
            queries = "**0**"
        size = statistics.median(r["bytes_per_response"] for r in result["runs"][name])
        rows.append(
            f"| {t['label']} | {size / 1024:,.1f} KiB | {codes} | **{t['rps']:,.0f}** | {ratio} "
            f"| {t['p50_ms']:.1f} ms "
            f"| {t['p99_ms']:.1f} ms | {t['database']['transactions']:,} | {queries} |"
        )
    misses = [s[name] for name in MISSES]
    spread = max((max(t["rps_all"]) - min(t["rps_all"])) / t["rps"] for t in s.values() if t["rps"])
    total = sum(t["requests"] for t in misses)
    beyond = sum(max(t["transactions_beyond_background"], 0) for t in misses)
    renders = sum(result["miss_renders"].values())
    if beyond < 1 and not renders:
        verdict = (
            f"**A miss runs no query**: the {total:,} misses ran no more transactions than the "
            "pages that exist did in the same time."
        )
    else:
        verdict = (
            "**A miss runs no query, except when the set of what exists expires (once a "
            "minute)**: beyond the "
            f"background, the {total:,} misses cost about {beyond:,.0f} transactions "
            f"(one per {total / max(beyond, 1):,.0f} misses; the background itself is "
            f"uneven, {cached['database']['transactions']} and "
            f"{s['incident']['database']['transactions']} for the two pages that exist, a "
            "probe being 3), and the workers rendered "
            f"{renders} made-up path{'' if renders == 1 else 's'} from the database (the log's "
            "`snapshot rebuilt` lines). The set of what exists is trusted for 60 s at most "
            "(`KNOWN_MAX_AGE_SECONDS`); then the next miss in a worker is rendered (the "
            "incident or history query) and the set is read again: incident codes, component "
            "ids, number of history pages (`_learn_what_exists` in "
            "statuspage/public/snapshots/serve.py)."
        )
    ratios = [t["ratio_to_cached"] for t in misses]
    command = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<free port>", result["server_command"])
    return "\n".join(
        [
            "What a made-up address costs beside a cached public page, measured side by side "
            f"(`make bench-misses`, bench/misses.py). The issue said: “{ISSUE_QUOTE}”.",
            "",
            f"Last run: {result['started']} ({result['finished_in_s'] / 60:.1f} minutes), "
            f"commit {m['git']}{' with uncommitted changes' if m['git_dirty'] else ''}: "
            f"`{' '.join(result['argv'])}` (raw: `{out.relative_to(ROOT)}`, not committed). "
            f"Load average {result['load_start']} at the start, {result['load_end']} at the "
            f"end. {m['nproc']} cores shared by wrk and the server (gunicorn, PostgreSQL, "
            "Redis): quote the ratios and the medians, not the absolute numbers (the rounds of "
            f"one path differ by up to {spread:.0%} of its median).",
            "",
            f"**Method.** A page of {COMPONENTS} components and {INCIDENTS} past incidents "
            "(bench/seed.py, with its two open incidents and a maintenance); Beacon under "
            f"`{command}` (sync workers, `DEBUG` off) on PostgreSQL and Redis, no Celery "
            "worker, `/` and the incident page warmed. Each path gets "
            f"`wrk -t{result['threads']} -c{result['connections']} -d{result['duration']}s`, "
            f"the four one after the other, {result['rounds']} rounds; medians of the rounds, "
            "status codes and transactions summed over them (*Response*: bytes per response, "
            "headers included, uncompressed). The misses come from "
            "bench/wrk/misses.lua (a new made-up path per request), the other two from "
            "bench/wrk/fixed.lua (the same Lua call, for a fixed path). *Transactions* are "
            "`xact_commit + xact_rollback` of the bench database in `pg_stat_database`, read "
            "before and after each run (each query outside a transaction block is one), with "
            "`CONN_MAX_AGE=0` so that a connection's counts are in when its request ends. "
            "*Queries per miss*: the transactions beyond the background, divided by the "
            "misses; the background is what the two pages that exist ran in the same time "
            f"({cached['background_per_s']:.1f} a second: each worker's database probe, a "
            "`SELECT 1` every 5 s on a connection of its own).",
            "",
            "| Path | Response | Status codes (all rounds) | Requests/s | / cached | p50 | p99 "
            "| Transactions (all rounds) | Queries per miss |",
            "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            f"Misses are answered at {min(ratios):.0%} to {max(ratios):.0%} of the cached "
            f"page's rate ({misses[0]['rps']:,.0f} and {misses[1]['rps']:,.0f} against "
            f"{cached['rps']:,.0f} requests/s; p50 {misses[0]['p50_ms']:.1f} and "
            f"{misses[1]['p50_ms']:.1f} ms against {cached['p50_ms']:.1f} ms); the issue's 320 "
            f"against 4,800 was {ISSUE_RATIO:.0%}. A made-up code or page is looked up in the "
            "set of what exists, which every process keeps with the snapshots "
            f"(docs/architecture.md, *Misses*), and answered with a 404. {verdict}",
            "",
            "What a miss still costs is the rest of the request: it is not in the "
            "process's memory, so it goes past the WSGI fast path into Django's handler, where "
            "SnapshotMiddleware asks the set of what exists (kept in the process) before "
            "anything else; neither Redis nor the snapshot directory is asked, and the 404 "
            "writes no warning of its own (gunicorn's access line has it). An earlier run, "
            "which still looked in Redis and on disk first and logged each 404, answered "
            "misses at 44% of the cached page's rate.",
        ]
    )


if __name__ == "__main__":
    os.chdir(ROOT)
    main()

"""Health checks at scale: the real beat and worker against a local HTTP target.

    .venv/bin/python bench/checks.py [--checks 2000] [--interval 30] [--duration 120]

Creates a database (beacon_bench_checks), N HTTP checks spread evenly over one interval, all
pointing at a local nginx that answers 200 and logs the arrival time of every request. Then
starts Celery beat and one worker (`-Q checks,default --pool threads --concurrency 4`, the
documented production setup) and, after a warm-up interval, measures for --duration seconds:

- sustained checks per second (requests that reached the target, and results recorded);
- lateness: each request's arrival minus its check's slot (first slot + k × interval):
  median, p99, maximum and the share within 2 s;
- CPU of the worker and of beat (user + system time from /proc over the window), in cores.

Target (issue: health checks): 2,000 checks at 30 s (≈ 67/s), every check starting within
2 s of its due time, the worker under one core. Results: bench/results/checks-<time>.json
and the section of docs/performance.md between the bench:checks markers.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from run import (
    BIN,
    DOC,
    HOST,
    RESULTS_DIR,
    ROOT,
    Processes,
    beacon_env,
    loadavg,
    log,
    machine,
    manage_shell,
    nginx_http,
    pg_execute,
    run_cmd,
)

DB = "beacon_bench_checks"
TARGET_PORT = 18110
DOC_START = "<!-- bench:checks:start -->"
DOC_END = "<!-- bench:checks:end -->"
TARGET_RATE_FOR = {"checks": 2000, "interval": 30}
TARGET_LATENESS_S = 2.0
TARGET_CORES = 1.0

SEED_CODE = """
import json
from datetime import timedelta
from django.utils import timezone
from components.models import Component, ComponentGroup, HealthCheck
count, interval, port = %d, %d, %d
group = ComponentGroup.objects.create(name="Fleet")
components = Component.objects.bulk_create(
    Component(name=f"Service {i}", group=group, position=i) for i in range(count // 10)
)
start = timezone.now() + timedelta(seconds=5)
checks = HealthCheck.objects.bulk_create(
    HealthCheck(
        component=components[i // 10], name=f"Check {i}", kind="http", interval=interval,
        timeout=5, url="http://127.0.0.1:%%d/c/{}" %% port,
        next_run_at=start + timedelta(seconds=interval * i / count),
    )
    for i in range(count)
)
for check in checks:
    check.url = check.url.format(check.pk)
HealthCheck.objects.bulk_update(checks, ["url"])
first = {c.pk: c.next_run_at.timestamp() for c in checks}
print("BENCHJSON " + json.dumps({"first_slot": first}))
"""

COUNT_CODE = """
import json
from components.models import CheckResult
print("BENCHJSON " + json.dumps({"results": CheckResult.objects.count()}))
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children that were reaped, plus live children."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for path in [Path(f"/proc/{pid}")] + [
        p for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == pid
    ]:
        try:
            fields = (path / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _parent(proc_dir: Path) -> int | None:
    try:
        return int((proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def target_conf(tmp: Path, port: int, access_log: Path) -> str:
    return nginx_http(
        f"""    log_format arrivals '$msec $uri';
    server {{
        listen {HOST}:{port};
        access_log {access_log} arrivals buffer=64k flush=1s;
        location /c/ {{ return 200 "ok"; }}
    }}""",
        tmp,
    ).replace("    access_log off;\n", "")


def lateness(log_path: Path, first_slot: dict, interval: int, since: float, until: float):
    late, arrivals = [], 0
    for line in log_path.read_text().splitlines():
        match = re.match(r"([\d.]+) /c/(\d+)$", line)
        if not match:
            continue
        at, pk = float(match.group(1)), match.group(2)
        if not since <= at < until or pk not in first_slot:
            continue
        arrivals += 1
        first = first_slot[pk]
        k = max(0, round((at - first) / interval - 0.25))
        late.append(at - (first + k * interval))
    return arrivals, late


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--interval", type=int, default=30)
    parser.add_argument("--duration", type=int, default=120)
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="beacon-bench-checks-"))
    procs = Processes(tmp)
    env = beacon_env(DB, tmp / "var")
    env.update(
        CHECKS_ALLOW_PRIVATE="true",
        SNAPSHOT_RENDER_ON_WRITE="false",
        CACHE_KEY_PREFIX="beacon-bench-checks",
        REDIS_URL=env["REDIS_URL"].rsplit("/", 1)[0] + "/6",
    )
    ok = False
    try:
        started = datetime.now(UTC)
        load_start = loadavg()
        pg_execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        pg_execute(f"CREATE DATABASE {DB}")
        log("migrating")
        run_cmd([str(BIN / "python"), "manage.py", "migrate", "-v0"], env=env)
        access_log = tmp / "arrivals.log"
        (tmp / "nginx" / "tmp").mkdir(parents=True)
        conf = tmp / "nginx" / "nginx.conf"
        conf.write_text(target_conf(tmp / "nginx", TARGET_PORT, access_log))
        procs.start("target", ["nginx", "-c", str(conf), "-p", str(tmp / "nginx")], env)
        log(f"seeding {args.checks} checks every {args.interval}s")
        seeded = manage_shell(env, SEED_CODE % (args.checks, args.interval, TARGET_PORT))
        first_slot = seeded["first_slot"]
        worker = procs.start(
            "worker",
            [
                str(BIN / "celery"),
                "-A",
                "statuspage",
                "worker",
                "-Q",
                "checks,default",
                "--pool",
                "threads",
                "--concurrency",
                "4",
                "--loglevel",
                "WARNING",
            ],
            env,
        )
        beat = procs.start(
            "beat",
            [
                str(BIN / "celery"),
                "-A",
                "statuspage",
                "beat",
                "--loglevel",
                "WARNING",
                "--schedule",
                str(tmp / "beat-schedule"),
            ],
            env,
        )
        log(f"warming up for one interval ({args.interval}s)")
        time.sleep(args.interval + 5)
        results_before = manage_shell(env, COUNT_CODE)["results"]
        cpu_before = {"worker": cpu_seconds(worker.pid), "beat": cpu_seconds(beat.pid)}
        since = time.time()
        log(f"measuring for {args.duration}s")
        time.sleep(args.duration)
        until = time.time()
        cpu = {
            name: (cpu_seconds(proc.pid) - cpu_before[name]) / (until - since)
            for name, proc in (("worker", worker), ("beat", beat))
        }
        results_after = manage_shell(env, COUNT_CODE)["results"]
        time.sleep(1.5)  # nginx flushes its log buffer every second
        arrivals, late = lateness(access_log, first_slot, args.interval, since, until)
        window = until - since
        result = {
            "started": started.isoformat(timespec="seconds"),
            "machine": machine(),
            "load_start": load_start,
            "load_end": loadavg(),
            "checks": args.checks,
            "interval": args.interval,
            "duration": round(window, 1),
            "expected_per_s": round(args.checks / args.interval, 1),
            "requests_per_s": round(arrivals / window, 1),
            "results_per_s": round((results_after - results_before) / window, 1),
            "lateness_s": {
                "median": round(statistics.median(late), 3) if late else None,
                "p99": round(percentile(late, 0.99), 3) if late else None,
                "max": round(max(late), 3) if late else None,
                "within_2s": round(sum(x <= TARGET_LATENESS_S for x in late) / len(late), 4)
                if late
                else None,
            },
            "cpu_cores": {k: round(v, 3) for k, v in cpu.items()},
        }
        RESULTS_DIR.mkdir(exist_ok=True)
        out = RESULTS_DIR / f"checks-{started:%Y%m%dT%H%M%SZ}.json"
        out.write_text(json.dumps(result, indent=2))
        log(json.dumps(result["lateness_s"]) + f" cpu {result['cpu_cores']}")
        log(f"{result['requests_per_s']} requests/s, {result['results_per_s']} results/s; {out}")
        if not args.no_doc:
            write_doc(result, out)
        ok = True
    finally:
        procs.stop_all()
        if ok and not args.keep_logs:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"logs kept in {tmp}")


def write_doc(result: dict, out: Path) -> None:
    lat, cpu = result["lateness_s"], result["cpu_cores"]
    meets = (
        lat["within_2s"] is not None
        and lat["within_2s"] >= 1.0
        and cpu["worker"] < TARGET_CORES
        and result["results_per_s"] >= 0.95 * result["expected_per_s"]
    )
    command = (
        f"bench/checks.py --checks {result['checks']} --interval {result['interval']} "
        f"--duration {int(result['duration'])}"
    )
    text = f"""{DOC_START}
Last run: {result["started"]}, `{command}` (raw: `{out.relative_to(ROOT)}`). Load average
at the start {result["load_start"]}, at the end {result["load_end"]}.

| Measure | Result | Target |
| --- | ---: | ---: |
| Checks due per second | {result["expected_per_s"]} | ≈ 67 |
| Requests at the target per second | {result["requests_per_s"]} | |
| Results recorded per second | {result["results_per_s"]} | ≥ 95 % of due |
| Lateness, median / p99 / max | {lat["median"]} / {lat["p99"]} / {lat["max"]} s | |
| Checks starting within 2 s of their slot | {lat["within_2s"]:.2%} | 100 % |
| Worker CPU (`-Q checks,default --pool threads -c 4`) | {cpu["worker"]:.2f} cores | < 1 core |
| Beat CPU | {cpu["beat"]:.2f} cores | |

Target met: {"yes" if meets else "**no**"}.
{DOC_END}"""
    doc = DOC.read_text()
    if DOC_START in doc:
        doc = re.sub(
            re.escape(DOC_START) + ".*?" + re.escape(DOC_END), lambda _: text, doc, flags=re.S
        )
    else:
        doc = doc.rstrip() + "\n\n## Health checks at scale\n\n" + text + "\n"
    DOC.write_text(doc)


if __name__ == "__main__":
    os.chdir(ROOT)
    main()

"""Capacity with 1, 2 and 3 web hosts behind a front nginx, and how fast a change reaches them.

    .venv/bin/python bench/scale.py [--quick] [--duration 10] [--rounds 3] [--changes 20]
                                    [--workers 2] [--no-doc] [--keep-logs]

Issue 16 asked: run 1, 2 and 3 web processes behind nginx on this machine and report how
requests/s and p99 scale, and the time for a change to be visible on every host. This does
it as docs/deployment.md ("Several web hosts") describes a deployment:

- The database beacon_bench_scale (dropped at the start and the end), seeded by bench/seed.py
  with 20 components and 300 past incidents (plus its open incidents and a maintenance);
  Redis db 9 (flushed at the start and the end), CACHE_KEY_PREFIX beacon-bench-scale.
- Three hosts, each: gunicorn with statuspage.gunicorn_conf (`--workers 2`, sync), its own
  SNAPSHOT_DIR, its own follower (`manage.py follow_snapshots`) and its own nginx running
  deploy/nginx/beacon.conf as shipped (its port, upstream, files root and log paths moved).
- One Celery worker with a directory of its own renders the changes; only the followers
  bring them to the hosts' disks.
- Three front nginx, the load balancer: front N round-robins over the first N hosts'
  nginx (keep-alive upstream connections). All of them run throughout, so every
  configuration is measured with the same processes alive.

Load: per round, for each configuration (host a's nginx directly, then front 1, 2 and 3;
the order rotates from round to round) `wrk -t2 -c64` for --duration seconds on

- `/` and `/api/v2/summary.json`: files, which each host's nginx serves from its disk;
- `/?x=<random>` with no-cache headers (bench/wrk/bypass.lua) and `/history/?page=2`: a
  query string, so each host's nginx passes them to its gunicorn and Django answers.

Medians over the rounds; the CPU time of each group of processes (from /proc) and of wrk
around every run, per request. Then the time to visible: for N = 1, 2, 3 (the followers of
the other hosts stopped, a stopped one started again before its N and caught up), --changes
status changes of one component through components.services in a helper process, each
polled every 10 ms on the worker's own files and on every one of the N hosts (its file
`api/v2/components.json` and its nginx answering it) until all show it; timed from the
commit.

Results in bench/results/scale-<time>.json and the "Scaling out" section of
docs/performance.md (between the bench:scale markers). About ten minutes in full. Everything
it starts is stopped in a finally block, by process group.
"""

import argparse
import contextlib
import getpass
import json
import os
import random
import re
import resource
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from subprocess import Popen

import redis
from run import (
    BIN,
    DEFAULT_NGINX_CONF,
    DOC,
    HOST,
    RESULTS_DIR,
    ROOT,
    WORKER_CMD,
    Dataset,
    Processes,
    beacon_env,
    change_status,
    free_port,
    http_get,
    loadavg,
    log,
    machine,
    median_result,
    nginx_http,
    pg_execute,
    published_status,
    run_cmd,
    run_seed,
    stop_changers,
    wait_http,
    write_doc_section,
    wrk_argv,
    wrk_env,
    wrk_result,
)

DB = "beacon_bench_scale"
REDIS_DB = 9
COMPONENTS, INCIDENTS = 20, 300
HOST_NAMES = ("a", "b", "c")
THREADS, CONNECTIONS = 2, 64
GUNICORN_CMD = (
    "{bin}/gunicorn -c python:statuspage.gunicorn_conf statuspage.wsgi "
    "--bind 127.0.0.1:{port} --workers {workers} --no-control-socket"
)
FOLLOWER_CMD = "{bin}/python manage.py follow_snapshots"
POLL_SECONDS = 0.01
VISIBLE_TIMEOUT = 30.0
DOC_START = "<!-- bench:scale:start -->"
DOC_END = "<!-- bench:scale:end -->"
DOC_HEADING = "## Scaling out"
# nginx's own ETag is "<mtime>-<size>" in hex; Django's is a hash.
NGINX_ETAG = re.compile(r'"[0-9a-f]+-[0-9a-f]+"')

# name: (label, path, wrk script, served from a file by the host's nginx)
TARGETS = {
    "home": ("`/`", "/", "report.lua", True),
    "summary": ("`/api/v2/summary.json`", "/api/v2/summary.json", "report.lua", True),
    "bypass": ("`/?x=<random>`, no-cache", "/", "bypass.lua", False),
    "history": ("`/history/?page=2`", "/history/?page=2", "report.lua", False),
}
# What the host's nginx answers from its files, and what it hands to Django.
FILES = tuple(name for name, target in TARGETS.items() if target[3])
DJANGO = tuple(name for name, target in TARGETS.items() if not target[3])
# The process groups whose CPU time is counted around each wrk run.
ROLES = ("host_nginx", "gunicorn", "front", "followers", "worker")


@dataclass
class Host:
    name: str
    snapshot_dir: Path
    env: dict
    web_port: int = 0
    nginx_port: int = 0
    web: Popen | None = None
    nginx: Popen | None = None
    follower: Popen | None = None

    @property
    def files(self) -> Path:
        return self.snapshot_dir / "files"


@dataclass
class Bench:
    tmp: Path
    procs: Processes
    env: dict
    ds: Dataset
    hosts: list[Host] = field(default_factory=list)
    fronts: dict[int, tuple[int, Popen]] = field(default_factory=dict)  # N: (port, nginx)
    worker: Popen | None = None
    worker_files: Path | None = None


def redis_flush() -> None:
    redis.Redis(host=HOST, port=6379, db=REDIS_DB).flushdb()


# --- the hosts and the fronts -------------------------------------------------------------


def host_nginx_conf(prefix: Path, port: int, upstream_port: int, files: Path) -> str:
    """deploy/nginx/beacon.conf as shipped, with only its addresses and paths moved."""
    text = DEFAULT_NGINX_CONF.read_text()
    moves = {
        "server 127.0.0.1:8000;": f"server {HOST}:{upstream_port};",
        "listen 80;": f"listen {HOST}:{port};",
        "listen [::]:80;": "",
        "/srv/beacon/var/snapshots/files": str(files),
        "/var/log/nginx/": f"{prefix}/",
    }
    for old, new in moves.items():
        if old not in text:
            raise RuntimeError(
                f"{DEFAULT_NGINX_CONF.relative_to(ROOT)} no longer contains {old!r}; "
                "bench/scale.py must learn its new shape"
            )
        text = text.replace(old, new)
    return nginx_http(text, prefix, getpass.getuser())


def front_nginx_conf(prefix: Path, port: int, hosts: list[Host]) -> str:
    """A load balancer: round robin over the hosts' nginx, connections kept alive."""
    servers = "\n".join(f"        server {HOST}:{h.nginx_port};" for h in hosts)
    return nginx_http(
        f"""    upstream hosts {{
{servers}
        keepalive 64;
    }}
    server {{
        listen {HOST}:{port};
        location / {{
            proxy_pass http://hosts;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffer_size 16k;
            proxy_buffers 16 16k;
        }}
    }}""",
        prefix,
        getpass.getuser(),
    )


def start_nginx(bench: Bench, name: str, conf_text: str, port: int) -> Popen:
    prefix = bench.tmp / name
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(conf_text)
    proc = bench.procs.start(name, ["nginx", "-c", str(conf), "-p", str(prefix)], bench.env)
    wait_http(port, "/robots.txt", proc=proc)
    return proc


def start_follower(bench: Bench, host: Host) -> None:
    """Starts the host's follower and waits for its first catch-up."""
    log_path = bench.tmp / f"follower-{host.name}.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    host.follower = bench.procs.start(
        f"follower-{host.name}", shlex.split(FOLLOWER_CMD.format(bin=BIN)), host.env
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with log_path.open("rb") as handle:
            handle.seek(offset)
            if b"caught up reason=start" in handle.read():
                return
        if host.follower.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"the follower of host {host.name} did not catch up; see {log_path}")


def stop_follower(bench: Bench, host: Host) -> None:
    if host.follower is not None:
        bench.procs.stop(host.follower)
        host.follower = None


def start_host(bench: Bench, name: str, workers: int) -> Host:
    snapshot_dir = bench.tmp / f"host-{name}" / "snapshots"
    snapshot_dir.mkdir(parents=True)
    host = Host(name, snapshot_dir, {**bench.env, "SNAPSHOT_DIR": str(snapshot_dir)})
    host.web_port, host.nginx_port = free_port(), free_port()
    command = GUNICORN_CMD.format(bin=BIN, port=host.web_port, workers=workers)
    host.web = bench.procs.start(f"gunicorn-{name}", shlex.split(command), host.env)
    start_follower(bench, host)
    wait_http(host.web_port, "/robots.txt", proc=host.web)
    conf = host_nginx_conf(bench.tmp / f"nginx-{name}", host.nginx_port, host.web_port, host.files)
    host.nginx = start_nginx(bench, f"nginx-{name}", conf, host.nginx_port)
    return host


def start_fronts(bench: Bench) -> None:
    for n in range(1, len(bench.hosts) + 1):
        port = free_port()
        conf = front_nginx_conf(bench.tmp / f"front-{n}", port, bench.hosts[:n])
        bench.fronts[n] = (port, start_nginx(bench, f"front-{n}", conf, port))


def check_hosts(bench: Bench) -> dict:
    """Every host answers every target, the files from its disk and the rest from Django.

    Each path is asked several times, so every gunicorn worker has it in memory.
    """
    checks: dict = {}
    for host in bench.hosts:
        checks[host.name] = {}
        for name, (_, path, script, from_file) in TARGETS.items():
            asked = f"{path}?x={random.randint(1, 10**9)}" if script == "bypass.lua" else path
            for _ in range(12):
                status, headers, _ = http_get(host.nginx_port, asked)
            served_by_file = bool(NGINX_ETAG.fullmatch(headers.get("ETag", "")))
            checks[host.name][name] = {"status": status, "from_file": served_by_file}
            if status != 200 or served_by_file != from_file:
                raise RuntimeError(
                    f"host {host.name} answered {asked} with {status}, "
                    f"{'from a file' if served_by_file else 'from Django'}; expected 200 "
                    f"{'from a file' if from_file else 'from Django'}"
                )
    for n, (port, _) in bench.fronts.items():
        for name, (_, path, _, _) in TARGETS.items():
            status, _, _ = http_get(port, path)
            if status != 200:
                raise RuntimeError(f"front {n} answered {path} ({name}) with {status}")
    return checks


# --- load ---------------------------------------------------------------------------------


def process_groups(bench: Bench) -> dict[str, set[int]]:
    groups: dict[str, set[int]] = {role: set() for role in ROLES}
    for host in bench.hosts:
        for role, proc in (("host_nginx", host.nginx), ("gunicorn", host.web)):
            if proc is not None:
                groups[role].add(proc.pid)
        if host.follower is not None:
            groups["followers"].add(host.follower.pid)
    groups["front"] = {proc.pid for _, proc in bench.fronts.values()}
    if bench.worker is not None:
        groups["worker"].add(bench.worker.pid)
    return groups


def group_cpu_seconds(groups: dict[str, set[int]]) -> dict[str, float]:
    """CPU time (user + system, reaped children included) of each group's processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    totals = dict.fromkeys(groups, 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        group = int(fields[2])
        for role, members in groups.items():
            if group in members:
                totals[role] += sum(int(value) for value in fields[11:15]) / ticks
    return totals


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


def one_run(bench: Bench, url: str, target: str, duration: int) -> dict:
    _, _, script, from_file = TARGETS[target]
    argv = wrk_argv(url, CONNECTIONS, duration, script, THREADS)
    groups = process_groups(bench)
    before, busy_before = group_cpu_seconds(groups), machine_busy()
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    # Handing every response to Lua costs wrk about a fifth of its speed at nginx's rates:
    # for the files wrk counts statuses >= 400 itself.
    output = run_cmd(argv, env=wrk_env(not from_file), timeout=duration + 60)
    wall = time.monotonic() - began
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    after, busy_after = group_cpu_seconds(groups), machine_busy()
    result = wrk_result(output)
    result["command"] = shlex.join(argv)
    cpu = {role: after[role] - before[role] for role in ROLES}
    cpu["wrk"] = (wrk_after.ru_utime - wrk_before.ru_utime) + (
        wrk_after.ru_stime - wrk_before.ru_stime
    )
    result["cpu_s"] = {role: round(value, 3) for role, value in cpu.items()}
    result["cpu_ms_per_request"] = {
        role: 1000 * value / result["requests"] if result["requests"] else None
        for role, value in cpu.items()
    }
    busy = busy_after[0] - busy_before[0]
    total = busy_after[1] - busy_before[1]
    result["machine_busy_cores"] = round((os.cpu_count() or 1) * busy / total, 2) if total else 0
    result["bench_cores"] = round(sum(cpu.values()) / wall, 2)
    return result


def configurations(bench: Bench) -> dict[str, tuple[int, int]]:
    """name: (port wrk loads, number of hosts behind it)."""
    configs = {"direct": (bench.hosts[0].nginx_port, 1)}
    for n, (port, _) in bench.fronts.items():
        configs[f"front{n}"] = (port, n)
    return configs


def load(bench: Bench, duration: int, rounds: int) -> dict:
    configs = configurations(bench)
    order = list(configs)
    runs: dict = {config: {target: [] for target in TARGETS} for config in configs}
    for number in range(rounds):
        # Each configuration in a different place in each round, so none always follows
        # the same neighbour on a machine whose load drifts.
        rotated = order[number % len(order) :] + order[: number % len(order)]
        for config in rotated:
            port, _ = configs[config]
            for target, (_, path, _, _) in TARGETS.items():
                r = one_run(bench, f"http://{HOST}:{port}{path}", target, duration)
                runs[config][target].append(r)
                log(
                    f"round {number + 1} {config} {target}: {r['rps']:,.0f} req/s, "
                    f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                    f"non-200 {r['non_200']}, socket errors {r['socket_errors']}, "
                    f"busy {r['machine_busy_cores']} cores"
                )
    for proc in [h.web for h in bench.hosts] + [h.nginx for h in bench.hosts]:
        if proc is not None and proc.poll() is not None:
            name, log_path = proc.name, proc.log_path  # type: ignore[attr-defined]
            raise RuntimeError(f"{name} exited during the load; see {log_path}")
    return runs


def summarise_load(bench: Bench, runs: dict) -> dict:
    configs = configurations(bench)
    summary: dict = {}
    for target in TARGETS:
        summary[target] = {}
        for config, (_, hosts) in configs.items():
            results = runs[config][target]
            merged = median_result(results)
            cpu = {
                role: statistics.median(r["cpu_ms_per_request"][role] or 0 for r in results)
                for role in (*ROLES, "wrk")
            }
            summary[target][config] = {
                "hosts": hosts,
                "front": config != "direct",
                "rps": merged["rps"],
                "rps_all": [round(r["rps"], 1) for r in results],
                "p50_ms": merged["p50_ms"],
                "p99_ms": merged["p99_ms"],
                "p99_ms_all": [r["p99_ms"] for r in results],
                "requests": merged["requests"],
                "non_200": merged["non_200"],
                "socket_errors": merged["socket_errors"],
                "bytes_per_response": merged["bytes_per_response"],
                "cpu_ms_per_request": cpu,
                "machine_busy_cores": statistics.median(r["machine_busy_cores"] for r in results),
                "bench_cores": statistics.median(r["bench_cores"] for r in results),
            }
        one = summary[target]["front1"]["rps"]
        for row in summary[target].values():
            row["ratio_to_front1"] = row["rps"] / one if one else None
    return summary


# --- time to visible ----------------------------------------------------------------------


def file_status(files: Path, name: str) -> str | None:
    try:
        components = json.loads((files / "api/v2/components.json").read_bytes())["components"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return next((c.get("status") for c in components if c.get("name") == name), None)


def watch_change(bench: Bench, hosts: list[Host], name: str, status: str, committed: float):
    """Seconds from the commit until each place shows `status` (None: not within the timeout)."""
    assert bench.worker_files is not None
    seen: dict[str, float | None] = {"worker": None}
    for host in hosts:
        seen[f"{host.name}:file"] = None
        seen[f"{host.name}:nginx"] = None
    deadline = time.monotonic() + VISIBLE_TIMEOUT
    while time.monotonic() < deadline and None in seen.values():
        if seen["worker"] is None and file_status(bench.worker_files, name) == status:
            seen["worker"] = time.time() - committed
        for host in hosts:
            if seen[f"{host.name}:file"] is None and file_status(host.files, name) == status:
                seen[f"{host.name}:file"] = time.time() - committed
            if (
                seen[f"{host.name}:nginx"] is None
                and published_status(host.nginx_port, name) == status
            ):
                seen[f"{host.name}:nginx"] = time.time() - committed
        time.sleep(POLL_SECONDS)
    return seen


def visibility(bench: Bench, changes: int) -> dict:
    """For N = 1, 2, 3: the followers of the first N hosts only; `changes` changes each."""
    name = bench.ds.probe
    statuses = ("major_outage", "operational")
    rng = random.Random(16)
    for host in bench.hosts[1:]:
        stop_follower(bench, host)
    results: dict = {}
    count = 0
    for n in range(1, len(bench.hosts) + 1):
        hosts = bench.hosts[:n]
        if hosts[-1].follower is None:
            start_follower(bench, hosts[-1])
        per_change = []
        for _ in range(changes):
            status = statuses[count % 2]
            count += 1
            committed = change_status(bench.ds, name, status)
            seen = watch_change(bench, hosts, name, status, committed)
            took = {place: s for place, s in seen.items() if s is not None}
            if len(took) < len(seen):
                missing = ", ".join(place for place in seen if place not in took)
                raise RuntimeError(
                    f"a change to {status} was not visible within {VISIBLE_TIMEOUT:.0f} s at "
                    f"{missing}"
                )
            on_hosts = [s for place, s in took.items() if place != "worker"]
            per_change.append(
                {
                    "status": status,
                    "seconds": {place: round(s, 4) for place, s in took.items()},
                    "worker": took["worker"],
                    "every_host": max(on_hosts),
                    "first_host": min(on_hosts),
                }
            )
            time.sleep(rng.uniform(0.3, 0.8))
        every = [c["every_host"] for c in per_change]
        results[n] = {
            "hosts": n,
            "changes": per_change,
            "worker_median_s": statistics.median(c["worker"] for c in per_change),
            "first_host_median_s": statistics.median(c["first_host"] for c in per_change),
            "every_host_median_s": statistics.median(every),
            "every_host_max_s": max(every),
            "follower_lag_median_s": statistics.median(
                c["every_host"] - c["worker"] for c in per_change
            ),
        }
        log(
            f"{n} host{'s' if n > 1 else ''}: a change is on the worker's disk after "
            f"{results[n]['worker_median_s']:.3f} s and on every host after "
            f"{results[n]['every_host_median_s']:.3f} s (median), "
            f"{results[n]['every_host_max_s']:.3f} s at most"
        )
    return results


# --- the run ------------------------------------------------------------------------------


def seed(env: dict) -> dict:
    pg_execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    pg_execute(f"CREATE DATABASE {DB}")
    redis_flush()
    log(f"migrating {DB}")
    run_cmd([str(BIN / "python"), "manage.py", "migrate", "--noinput", "-v0"], env=env)
    log(f"seeding {COMPONENTS} components, {INCIDENTS} past incidents")
    seeded = run_seed(env, COMPONENTS, INCIDENTS)
    # Before autovacuum finds the new tables in the middle of a run.
    pg_execute("VACUUM (ANALYZE)", dbname=DB)
    return seeded


def settle_everywhere(bench: Bench) -> None:
    """One change, seen on every host: the worker has rendered and every files tree is full."""
    name = bench.ds.probe
    for status in ("degraded_performance", "operational"):
        committed = change_status(bench.ds, name, status)
        seen = watch_change(bench, bench.hosts, name, status, committed)
        if None in seen.values():
            raise RuntimeError(f"the first change did not reach every host: {seen}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 s, 1 round")
    parser.add_argument("--duration", type=int, help="seconds per wrk run (10; quick 3)")
    parser.add_argument("--rounds", type=int, help="rounds of every run (3; quick 1)")
    parser.add_argument("--changes", type=int, help="status changes per N (20; quick 5)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per host")
    parser.add_argument("--no-doc", action="store_true", help="leave docs/performance.md alone")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument(
        "--rewrite-doc",
        metavar="RESULTS",
        type=Path,
        help="run nothing: rewrite the doc's section from an earlier bench/results/scale-*.json",
    )
    args = parser.parse_args()
    if args.rewrite_doc:
        out = args.rewrite_doc.resolve()
        write_doc(json.loads(out.read_text(), object_hook=_int_keys), out)
        log(f"updated {DOC.relative_to(ROOT)} from {out.relative_to(ROOT)}")
        return
    duration = args.duration or (3 if args.quick else 10)
    rounds = args.rounds or (1 if args.quick else 3)
    changes = args.changes or (5 if args.quick else 20)
    for option, value in (("--duration", duration), ("--rounds", rounds)):
        if value < 1:
            parser.error(f"{option} must be at least 1")
    if changes < 1 or args.workers < 1:
        parser.error("--changes and --workers must be at least 1")
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            parser.error(f"{tool} is not installed (apt-get install -y wrk nginx-light)")

    began = time.monotonic()
    started = datetime.now(UTC)
    tmp = Path(tempfile.mkdtemp(prefix="beacon-bench-scale-"))
    tmp.chmod(0o755)  # nginx workers read the hosts' files below it
    env = beacon_env(DB, tmp / "var")
    env.update(
        REDIS_URL=f"redis://{HOST}:6379/{REDIS_DB}",
        CACHE_KEY_PREFIX="beacon-bench-scale",
        ALLOWED_HOSTS=HOST,
        STATIC_MANIFEST="false",  # nothing is written to the shared staticfiles/
        SNAPSHOT_DIR=str(tmp / "changer" / "snapshots"),
    )
    ds = Dataset(COMPONENTS, INCIDENTS, DB, tmp, env)
    bench = Bench(tmp, Processes(tmp), env, ds)
    ok = False
    try:
        result: dict = {
            "started": started.isoformat(timespec="seconds"),
            "argv": ["bench/scale.py", *sys.argv[1:]],
            "mode": "quick" if args.quick else "full",
            "machine": machine(),
            "load_start": loadavg(),
            "duration": duration,
            "rounds": rounds,
            "changes": changes,
            "threads": THREADS,
            "connections": CONNECTIONS,
            "workers_per_host": args.workers,
        }
        result["dataset"] = seed(env)

        worker_dir = tmp / "worker" / "snapshots"
        bench.worker_files = worker_dir / "files"
        bench.worker = bench.procs.start(
            "worker",
            shlex.split(WORKER_CMD.format(bin=BIN)),
            {**env, "SNAPSHOT_DIR": str(worker_dir)},
        )
        for name in HOST_NAMES:
            bench.hosts.append(start_host(bench, name, args.workers))
        start_fronts(bench)
        settle_everywhere(bench)
        result["checks"] = check_hosts(bench)
        result["server_command"] = GUNICORN_CMD.format(
            bin=".venv/bin", port="<port>", workers=args.workers
        )
        log(f"{len(bench.hosts)} hosts and {len(bench.fronts)} fronts up; loading")

        runs = load(bench, duration, rounds)
        result["runs"] = runs
        result["load"] = summarise_load(bench, runs)
        log("time to visible")
        result["visibility"] = visibility(bench, changes)
        result["load_end"] = loadavg()
        result["finished_in_s"] = round(time.monotonic() - began, 1)
        print_table(result)

        RESULTS_DIR.mkdir(exist_ok=True)
        out = RESULTS_DIR / f"scale-{started:%Y%m%dT%H%M%SZ}.json"
        out.write_text(json.dumps(result, indent=2, default=str))
        log(f"results: {out.relative_to(ROOT)}")
        if not args.no_doc:
            write_doc(result, out)
            log(f"updated {DOC.relative_to(ROOT)}")
        ok = all(
            row["non_200"] == 0 and row["socket_errors"] == 0
            for rows in result["load"].values()
            for row in rows.values()
        )
        if not ok:
            log("some responses were not 200, or wrk saw socket errors")
    finally:
        stop_changers()
        bench.procs.stop_all()
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


def _int_keys(obj: dict) -> dict:
    """JSON turned the numbers of hosts (the visibility's keys) into strings: back to ints."""
    return {int(k) if k.isdigit() else k: v for k, v in obj.items()}


def print_table(result: dict) -> None:
    print(f"\n{'target':<34} {'config':<7} {'req/s':>8} {'/N=1':>6} {'p50':>6} {'p99':>7} ")
    for target, rows in result["load"].items():
        for config, row in rows.items():
            print(
                f"{TARGETS[target][0].replace('`', ''):<34} {config:<7} {row['rps']:>8,.0f} "
                f"{row['ratio_to_front1']:>6.2f} {row['p50_ms']:>6.1f} {row['p99_ms']:>7.1f}"
            )
    for n, v in result["visibility"].items():
        print(
            f"N={n}: worker {v['worker_median_s']:.3f} s, every host median "
            f"{v['every_host_median_s']:.3f} s, max {v['every_host_max_s']:.3f} s"
        )
    print()


# --- the report ---------------------------------------------------------------------------


def write_doc(result: dict, out: Path) -> None:
    write_doc_section(DOC_START, DOC_END, DOC_HEADING, render(result, out))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def render(result: dict, out: Path) -> str:
    m, load_, vis = result["machine"], result["load"], result["visibility"]
    config_label = {"direct": "1, no front", "front1": "1", "front2": "2", "front3": "3"}
    rows = []
    for target, configs in load_.items():
        label = TARGETS[target][0]
        for config, row in configs.items():
            cpu = row["cpu_ms_per_request"]
            host_side = cpu["host_nginx"] + cpu["gunicorn"]
            ratio = "–" if config == "direct" else f"{row['ratio_to_front1']:.2f}"
            rows.append(
                f"| {label} | {config_label[config]} | **{row['rps']:,.0f}** | {ratio} "
                f"| {row['p50_ms']:.1f} ms | {row['p99_ms']:.1f} ms "
                f"| {row['non_200']:,} / {row['socket_errors']:,} "
                f"| {host_side:.3f} | {cpu['front']:.3f} | {cpu['wrk']:.3f} "
                f"| {row['machine_busy_cores']:.2f} ({row['bench_cores']:.2f}) |"
            )
    vis_rows = [
        f"| {n} | {len(v['changes'])} | {_ms(v['worker_median_s'])} "
        f"| {_ms(v['first_host_median_s'])} | **{_ms(v['every_host_median_s'])}** "
        f"| {_ms(v['every_host_max_s'])} | {_ms(v['follower_lag_median_s'])} |"
        for n, v in vis.items()
    ]
    spread = max(
        (max(row["rps_all"]) - min(row["rps_all"])) / row["rps"]
        for configs in load_.values()
        for row in configs.values()
        if row["rps"]
    )
    three = {t: load_[t]["front3"]["ratio_to_front1"] for t in TARGETS}
    front_cost = {t: load_[t]["front1"]["rps"] / load_[t]["direct"]["rps"] for t in TARGETS}
    front_share = {}
    for t in TARGETS:
        cpu = load_[t]["front1"]["cpu_ms_per_request"]
        front_share[t] = cpu["front"] / (cpu["host_nginx"] + cpu["gunicorn"])
    capacity = []
    for t in TARGETS:
        cpu = load_[t]["front1"]["cpu_ms_per_request"]
        host_side = cpu["host_nginx"] + cpu["gunicorn"]
        capacity.append(
            f"{TARGETS[t][0]} {1000 / host_side:,.0f} per host core"
            + (f" (the front: {1000 / cpu['front']:,.0f} per core)" if cpu["front"] else "")
        )
    busy = max(row["machine_busy_cores"] for c in load_.values() for row in c.values())
    rounds_text = f"{result['rounds']} round{'s' if result['rounds'] > 1 else ''}"
    if result["rounds"] > 1:
        spread_text = f"the rounds of one configuration differ by up to {spread:.0%} of its median"
    else:
        spread_text = "one round, so no spread between rounds was measured"
    others = max(
        row["machine_busy_cores"] - row["bench_cores"] for c in load_.values() for row in c.values()
    )
    worker_share = all(v["follower_lag_median_s"] < v["worker_median_s"] for v in vis.values())
    command = re.sub(r"^\S*/bin/", "", result["server_command"])  # where the venv was
    d = result["dataset"]
    worst_every = max(v["every_host_max_s"] for v in vis.values())
    return "\n".join(
        [
            "Requests/s and latency with 1, 2 and 3 web hosts behind a load balancer, and how "
            "long a change takes to be on every host (`make bench-scale`, bench/scale.py; "
            "issue 16).",
            "",
            f"Last run: {result['started']} ({result['mode']} run, "
            f"{result['finished_in_s'] / 60:.1f} minutes), commit {m['git']}"
            f"{' with uncommitted changes' if m['git_dirty'] else ''}: "
            f"`{' '.join(result['argv'])}` (raw: `{out.relative_to(ROOT)}`, not committed). "
            f"Load average {result['load_start']} at the start, {result['load_end']} at the "
            f"end.",
            "",
            "**How to run it.** `make bench-scale` (about ten minutes; needs wrk and nginx, "
            "PostgreSQL and Redis on 127.0.0.1), options in `BENCH_SCALE_ARGS`: `--quick` (3 s "
            "runs, one round, 5 changes), `--duration`, `--rounds`, `--changes`, `--workers` "
            "(gunicorn workers per host), `--no-doc`. It uses the database "
            f"`{DB}` and Redis db {REDIS_DB} (both emptied at the start and the end) and free "
            "ports.",
            "",
            f"**Method.** A page of {d['components']} components and {d['incidents']} past "
            "incidents (bench/seed.py, with its open incidents and a maintenance). Three web "
            "hosts as docs/deployment.md (*Several web hosts*) describes them, each with "
            f"`{command}` (sync workers, `DEBUG` off), its own `SNAPSHOT_DIR`, its own "
            "`manage.py follow_snapshots` and its own nginx running deploy/nginx/beacon.conf "
            "as shipped (only its port, upstream, files root and log paths moved). One Celery "
            "worker with a directory of its own renders every change; only the followers "
            "bring it to the hosts. In front, nginx as the load balancer: `upstream` round "
            "robin over the first N hosts' nginx with `keepalive 64` (and 256 KiB of proxy "
            "buffers, so that no answer is spooled to a temporary file). Every process runs "
            "throughout, so each configuration is measured with the same processes alive, "
            "only the traffic differs. Each configuration gets "
            f"`wrk -t{result['threads']} -c{result['connections']} -d{result['duration']}s` "
            f"on four paths, {rounds_text}, the configurations in a different "
            "order in each round; medians of the rounds. `/` and `/api/v2/summary.json` are "
            "files each host's nginx serves from its disk; `/?x=<random>` with no-cache "
            "headers (bench/wrk/bypass.lua) and `/history/?page=2` have a query string, so "
            "each host's nginx hands them to its gunicorn and Django answers (from its "
            "snapshots, without a database query). *1, no front*: wrk on host a's nginx directly. "
            "*Non-200*: counted by bench/wrk/report.lua for Django's paths; for the files, "
            "wrk's own count of statuses of 400 and more (counting every response in Lua "
            "costs wrk a fifth of its speed at these rates). *CPU per request*: the CPU time "
            "(user and system, from /proc) of the hosts' nginx and gunicorn processes, of "
            "the front nginx, and of wrk, during the run, divided by its requests; *busy*: "
            "the machine's busy cores in the same time (all processes, PostgreSQL, Redis and "
            "others' work included), and in brackets (*measured*) what the hosts, the front, the "
            "followers, the worker and wrk used of them.",
            "",
            "| Path | Hosts | Requests/s | / 1 host | p50 | p99 | Non-200 / socket errors "
            "| CPU ms/request: hosts | front | wrk | Busy cores (measured) |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            "**Time to visible.** For N = 1, 2, 3, with only the first N hosts' followers "
            "running (one stopped earlier starts again and catches up before its N), "
            f"{result['changes']} status changes of one component "
            "(`components.services.component_set_status` in a helper process on the same "
            "database, 0.3–0.8 s apart, no load), each timed from its commit until the "
            "worker's own `files/api/v2/components.json` shows it (*rendered*), and until "
            "every one of the N hosts shows it both in that file on its disk and through "
            "its nginx, polled every 10 ms. *Follower lag*: every host minus rendered, the "
            "median over the changes.",
            "",
            "| Hosts | Changes | Rendered (worker's disk), median | First host, median "
            "| Every host, median | Every host, max | Follower lag, median |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            *vis_rows,
            "",
            "**What it means.** All of this ran on one machine of "
            f"{m['nproc']} cores ({m['cpu']}), shared by wrk, the front, every host's nginx "
            "and gunicorn, the worker, PostgreSQL and Redis, and at times by others' work "
            f"({spread_text}; the machine was up to {busy:.1f} cores busy, up to "
            f"{others:.1f} of them outside the processes measured). More hosts here add "
            "processes, not CPUs: with 3 hosts wrk gets through the front "
            + ", ".join(f"{three[t]:.2f}× ({TARGETS[t][0]})" for t in TARGETS)
            + " of what it gets with 1, which says what spreading the same load over more "
            "processes does when the CPUs stay the same, not how far more machines go (and "
            "where others' work shares the machine, more processes also win a larger share "
            "of its CPUs from it). "
            "Django's paths are where more processes can help on the same CPUs (more gunicorn "
            "workers to take turns); their p99 goes from "
            + " and ".join(
                f"{load_[t]['front1']['p99_ms']:.0f} to {load_[t]['front3']['p99_ms']:.0f} ms"
                for t in DJANGO
            )
            + f" with 3 hosts ({3 * result['workers_per_host']} gunicorn workers and four "
            f"nginx taking turns on {m['nproc']} cores). The front itself: with one host "
            "behind it, wrk gets "
            + ", ".join(f"{front_cost[t]:.0%}" for t in TARGETS)
            + " of what the host's nginx serves directly (same order). A second nginx on the "
            "same cores weighs most where nginx's own work is the whole answer (the files: "
            "the front's CPU per request is "
            + " and ".join(f"{front_share[t]:.0%}" for t in FILES)
            + " of the hosts'); beside Django's work it is a small part ("
            + " and ".join(f"{front_share[t]:.0%}" for t in DJANGO)
            + ").",
            "",
            "What carries over to real machines is the CPU per request. The hosts' share, "
            "with one host behind the front, comes to "
            + "; ".join(capacity)
            + " (measured on a busy machine, where contention for the same cores and caches "
            "inflates each request's CPU time: an estimate, not a promise). The hosts "
            "share nothing on the request path but Redis, which each web "
            "process asks at most every 0.2 s whether a change was made "
            "(`SNAPSHOT_GENERATION_CHECK`): a host answers from its own disk or its "
            "processes' memory, and serving a snapshot touches neither PostgreSQL nor the ORM "
            "(statuspage/public/snapshots/serve.py). So on machines of their own, N hosts "
            "should serve about N times one host's rate, until the load balancer or the "
            "network is the limit; the front's CPU per request says where that is for an "
            "nginx balancer. This run does not show that on separate machines: it shows the "
            "cost per request from which the estimate is made.",
            "",
            f"A change was on every host within {worst_every:.2f} s each time (medians "
            + ", ".join(f"{_ms(v['every_host_median_s'])} with {n}" for n, v in vis.items())
            + "). "
            + ("Most of it is the worker's" if worker_share else "Part of it is the worker's")
            + " (the *rendered* column): the rebuild task waits until the change has been "
            "still for `SNAPSHOT_SETTLE_SECONDS` (0.2 s), then renders the hot outputs one "
            "after the other, each written to disk and announced as it is done; "
            "`api/v2/components.json`, the one timed here, comes after the page (in each "
            "enabled language) and the summary (`HOT_URL_NAMES` in "
            "statuspage/public/snapshots/keys.py), so the page itself is out somewhat sooner "
            "and the open incidents' pages later. The followers add the rest, "
            + ", ".join(f"{_ms(v['follower_lag_median_s'])} with {n}" for n, v in vis.items())
            + " (median): each copies the announced snapshot from Redis to its own disk, "
            "independently of the others.",
        ]
    )


if __name__ == "__main__":
    os.chdir(ROOT)
    main()

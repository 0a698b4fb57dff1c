#!/usr/bin/env python3
"""Beacon's load and scale benchmark, side by side with its references, in one run.

    make bench          # the full run (about 40 minutes on 2 cores)
    make bench-quick    # a smoke run: 3-second wrk runs, two sizes, 10-second outages

Stages (all by default; pick with --stages):

  serve     Beacon under the best of several servers (gunicorn sync/gthread, granian),
            against (a) a minimal Django view returning the same bytes from memory under the
            same server and (b) plain nginx serving them as static files, and (c) nginx with
            the configuration Beacon ships (deploy/nginx/beacon.conf, when it exists):
            wrk -t2 -c64 and -c256 on /, /api/v2/summary.json and an incident page.
  growth    10/100/1,000 components and 1,000/100,000 past incidents: requests/s and p99 of
            / and the summary, response sizes (raw, gzip) and rebuild time.
  stampede  A status change during a 64-connection load (rebuilds counted from the
            "snapshot rebuilt path=..." log lines), and random query strings with no-cache
            headers, which must not reach past the snapshot.
  failure   PostgreSQL stopped during load, Redis stopped during load, the Celery worker
            killed mid-rebuild. Both servers are always restarted (try/finally).

Every run writes bench/results/<timestamp>.json and rewrites the results section of
docs/performance.md. It uses its own PostgreSQL databases (beacon_bench_*), Redis db 5 and
ports 18100-18199, and stops everything it started.
"""

import argparse
import contextlib
import gzip
import http.client
import json
import os
import platform
import pwd
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV = ROOT / ".venv"
BIN = VENV / "bin"
RESULTS_DIR = BENCH / "results"
DOC = ROOT / "docs" / "performance.md"
DOC_START = "<!-- bench:results:start -->"
DOC_END = "<!-- bench:results:end -->"
DEFAULT_NGINX_CONF = ROOT / "deploy" / "nginx" / "beacon.conf"

HOST = "127.0.0.1"
PORT_BEACON, PORT_MINIMAL, PORT_NGINX, PORT_NGINX_BEACON = 18100, 18101, 18102, 18103
REDIS_DB = 5
REDIS_URL = f"redis://{HOST}:6379/{REDIS_DB}"
DB_PREFIX = "beacon_bench"
PG_VERSION_DIR = Path("/etc/postgresql")

ENDPOINTS = {
    "home": "/",
    "summary": "/api/v2/summary.json",
    "incident": "/incidents/{code}/",
}
SIZES_FULL = [(10, 1000), (100, 1000), (1000, 1000), (10, 100_000), (1000, 100_000)]
SIZES_QUICK = [(10, 1000), (100, 1000)]
# {bin}, {app} and {port} are filled in; {app} is "module:application".
SERVERS = {
    "gunicorn-sync-w2": "{bin}/gunicorn {app} --bind 127.0.0.1:{port} --workers 2 "
    "--worker-class sync --no-control-socket",
    "gunicorn-sync-w3": "{bin}/gunicorn {app} --bind 127.0.0.1:{port} --workers 3 "
    "--worker-class sync --no-control-socket",
    "gunicorn-sync-w4": "{bin}/gunicorn {app} --bind 127.0.0.1:{port} --workers 4 "
    "--worker-class sync --no-control-socket",
    "gunicorn-gthread-w2t4": "{bin}/gunicorn {app} --bind 127.0.0.1:{port} --workers 2 "
    "--worker-class gthread --threads 4 --no-control-socket",
    "granian-w2": "{bin}/granian --interface wsgi --host 127.0.0.1 --port {port} --workers 2 "
    "--no-access-log --log-level warning {app}",
    "granian-w3": "{bin}/granian --interface wsgi --host 127.0.0.1 --port {port} --workers 3 "
    "--no-access-log --log-level warning {app}",
    # One Python thread per worker: granian's default pool of blocking threads (hundreds per
    # worker) makes them take turns on the GIL, which shows in the p99 at 256 connections.
    "granian-w2-bt1": "{bin}/granian --interface wsgi --host 127.0.0.1 --port {port} "
    "--workers 2 --blocking-threads 1 --no-access-log --log-level warning {app}",
    "granian-w3-bt1": "{bin}/granian --interface wsgi --host 127.0.0.1 --port {port} "
    "--workers 3 --blocking-threads 1 --no-access-log --log-level warning {app}",
}
WORKER_CMD = (
    "{bin}/celery -A statuspage worker -Q default,checks,notify,snapshots -c 1 "
    "--loglevel=INFO --without-gossip --without-mingle --without-heartbeat"
)
REBUILT_LINE = re.compile(r"snapshot rebuilt path=(\S+)")

# Targets from the issue, checked in the tables.
TARGET_RATIO_MINIMAL = 0.85
TARGET_P99_64_MS = 25
TARGET_P99_256_MS = 100
TARGET_RATIO_NGINX = 0.80
TARGET_REBUILD_S = 1.0
TARGET_GROWTH_RATIO = 0.80


@dataclass
class Mode:
    quick: bool
    duration: int  # seconds per wrk run
    select_duration: int
    rounds: int
    sizes: list
    outage: int  # seconds PostgreSQL / Redis stay down
    connections: tuple = (64, 256)


# --- processes ----------------------------------------------------------------------------


class Processes:
    """Everything this run starts, each in its own process group, stopped by pid."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.running: list[subprocess.Popen] = []

    def start(self, name: str, argv: list[str], env: dict, cwd: Path = ROOT) -> subprocess.Popen:
        log_path = self.log_dir / f"{name}.log"
        log = log_path.open("ab")
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        proc.name, proc.log_path, proc.argv = name, log_path, argv  # type: ignore[attr-defined]
        self.running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        else:
            # The leader is gone; make sure no child of its group survives.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self.running)):
            self.stop(proc, timeout=10)


def log(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", flush=True)


def run_cmd(argv: list[str], env: dict | None = None, timeout: float = 3600, check=True) -> str:
    result = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout + result.stderr


def bench_json(output: str) -> dict:
    for line in output.splitlines():
        if line.startswith("BENCHJSON "):
            return json.loads(line.removeprefix("BENCHJSON "))
    raise RuntimeError(f"no BENCHJSON line in:\n{output[-3000:]}")


# --- HTTP ---------------------------------------------------------------------------------


def http_get(port: int, path: str, headers: dict | None = None, timeout: float = 30):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_http(port: int, path: str = "/", timeout: float = 60, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.name} exited; see {proc.log_path}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _, _ = http_get(port, path, timeout=30)
            if status < 500:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing answers on port {port} after {timeout}s")


# --- wrk ----------------------------------------------------------------------------------


def wrk_argv(
    url: str, connections: int, duration: int, script: str = "report.lua", threads: int = 2
) -> list[str]:
    return [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        f"bench/wrk/{script}",
        url,
    ]


def wrk_env(count_codes: bool) -> dict:
    return {**os.environ, "BENCH_COUNT_CODES": "1" if count_codes else "0"}


def wrk_result(output: str) -> dict:
    raw = bench_json(output)
    seconds = raw["duration_us"] / 1e6
    codes = {int(k): v for k, v in raw["codes"].items()}
    errors = raw["errors"]
    socket_errors = errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
    # Without the Lua counter, wrk's own count of statuses >= 400.
    non_200 = sum(v for k, v in codes.items() if k != 200) if raw["counted"] else errors["status"]
    return {
        "rps": raw["requests"] / seconds,
        "requests": raw["requests"],
        "p50_ms": raw["latency_us"]["p50"] / 1000,
        "p90_ms": raw["latency_us"]["p90"] / 1000,
        "p99_ms": raw["latency_us"]["p99"] / 1000,
        "max_ms": raw["latency_us"]["max"] / 1000,
        "non_200": non_200,
        "socket_errors": socket_errors,
        "errors": errors,
        "codes": codes,
        "codes_counted": raw["counted"],
        "bytes_per_response": raw["bytes"] / raw["requests"] if raw["requests"] else 0,
    }


def wrk(
    url: str,
    connections: int,
    duration: int,
    *,
    count_codes: bool = True,
    script: str = "report.lua",
    threads: int = 2,
) -> dict:
    argv = wrk_argv(url, connections, duration, script, threads)
    output = run_cmd(argv, env=wrk_env(count_codes), timeout=duration + 60)
    result = wrk_result(output)
    result["command"] = shlex.join(argv)
    return result


def wrk_background(
    url: str, connections: int, duration: int, *, threads: int = 2, script: str = "report.lua"
) -> subprocess.Popen:
    argv = wrk_argv(url, connections, duration, script, threads)
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=wrk_env(True),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    proc.argv = argv  # type: ignore[attr-defined]
    return proc


def wrk_collect(proc: subprocess.Popen) -> dict:
    output, _ = proc.communicate(timeout=600)
    result = wrk_result(output)
    result["command"] = shlex.join(proc.argv)  # type: ignore[attr-defined]
    return result


def median_result(results: list[dict]) -> dict:
    """The median of each number over repeated runs; errors are summed, not averaged."""
    if len(results) == 1:
        return {**results[0], "runs": 1}
    merged = {
        key: statistics.median(r[key] for r in results)
        for key in ("rps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "bytes_per_response")
    }
    merged["non_200"] = sum(r["non_200"] for r in results)
    merged["socket_errors"] = sum(r["socket_errors"] for r in results)
    merged["requests"] = sum(r["requests"] for r in results)
    merged["rps_all"] = [round(r["rps"], 1) for r in results]
    merged["command"] = results[0]["command"]
    merged["codes_counted"] = results[0]["codes_counted"]
    merged["runs"] = len(results)
    return merged


# --- PostgreSQL, Redis --------------------------------------------------------------------


def pg_execute(sql: str, dbname: str = "postgres") -> list:
    import psycopg

    with psycopg.connect(host=HOST, user="postgres", dbname=dbname, autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


def pg_cluster() -> tuple[str, str]:
    versions = sorted((p.name for p in PG_VERSION_DIR.iterdir() if p.name.isdigit()), key=int)
    return versions[-1], "main"


def redis_client():
    import redis

    return redis.Redis.from_url(REDIS_URL)


def beacon_env(db: str, var_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRANIAN_", "GUNICORN_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="statuspage.settings",
        DATABASE_URL=f"postgres://postgres@{HOST}:5432/{db}",
        REDIS_URL=REDIS_URL,
        # Its own prefix per database: the sizes share Redis db 5, never each other's pages.
        CACHE_KEY_PREFIX=f"beacon-bench-{db}",
        BEACON_VAR_DIR=str(var_dir),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DEBUG="false",
        SECRET_KEY="beacon-bench-only-" + "k" * 40,
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        PATH=f"{BIN}:{os.environ.get('PATH', '')}",
    )
    return env


def manage_shell(env: dict, code: str, timeout: float = 600) -> dict:
    return bench_json(
        run_cmd([str(BIN / "python"), "manage.py", "shell", "-c", code], env=env, timeout=timeout)
    )


def run_seed(env: dict, components: int, incidents: int) -> dict:
    """bench/seed.py on the migrated database of `env`; its JSON line (sizes, seconds, code)."""
    output = run_cmd(
        [
            str(BIN / "python"),
            "bench/seed.py",
            "--components",
            str(components),
            "--incidents",
            str(incidents),
        ],
        env=env,
    )
    return json.loads(next(ln for ln in reversed(output.splitlines()) if ln.startswith("{")))


def write_doc_section(start: str, end: str, heading: str, text: str, after: str = "") -> None:
    """Puts `text` between the markers `start` and `end` in docs/performance.md.

    The first time, a new section under `heading` goes after the section headed `after`
    (before the next heading of its level), or at the end.
    """
    block = f"{start}\n{text}\n{end}"
    doc = DOC.read_text()
    if start in doc:
        doc = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, doc, flags=re.S)
    else:
        section = f"{heading}\n\n{block}\n\n"
        previous = doc.find(f"\n{after}\n") if after else -1
        following = doc.find("\n## ", previous + 1) if previous != -1 else -1
        if following == -1:
            doc = doc.rstrip() + "\n\n" + section.rstrip() + "\n"
        else:
            doc = doc[: following + 1] + section + doc[following + 1 :]
    DOC.write_text(doc)


# --- data sets ----------------------------------------------------------------------------


@dataclass
class Dataset:
    components: int
    incidents: int
    db: str
    var_dir: Path
    env: dict
    incident_code: str = ""
    seed_seconds: float = 0.0
    paths: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.components:,} components, {self.incidents:,} incidents"

    @property
    def probe(self) -> str:
        """The component status changes are made to: the last one, in no open incident."""
        return f"Service {self.components}"


class Run:
    def __init__(self, args, mode: Mode):
        self.args = args
        self.mode = mode
        self.started = datetime.now(UTC)
        self.tmp = Path(tempfile.mkdtemp(prefix="beacon-bench-"))
        self.tmp.chmod(0o755)  # nginx workers read the files below it
        self.procs = Processes(self.tmp)
        self.databases: list[str] = []
        self.results: dict = {
            "started_at": self.started.isoformat(timespec="seconds"),
            "mode": "quick" if mode.quick else "full",
            "argv": sys.argv,
            "tmp": str(self.tmp),
        }
        self.template_ready = False
        self.pg_stopped = False
        self.redis_stopped = False

    # data

    def dataset(self, components: int, incidents: int) -> Dataset:
        db = f"{DB_PREFIX}_c{components}_i{incidents}"
        var_dir = self.tmp / f"var-c{components}-i{incidents}"
        var_dir.mkdir(exist_ok=True)
        var_dir.chmod(0o755)
        ds = Dataset(components, incidents, db, var_dir, beacon_env(db, var_dir))
        if not self.template_ready:
            template = f"{DB_PREFIX}_template"
            pg_execute(f"DROP DATABASE IF EXISTS {template} WITH (FORCE)")
            pg_execute(f"CREATE DATABASE {template}")
            self.databases.append(template)
            env = beacon_env(template, var_dir)
            log("migrating the template database, collecting static files")
            run_cmd([str(BIN / "python"), "manage.py", "migrate", "--noinput", "-v0"], env=env)
            run_cmd(
                [str(BIN / "python"), "manage.py", "collectstatic", "--noinput", "-v0"], env=env
            )
            self.template_ready = True
        pg_execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        pg_execute(f"CREATE DATABASE {db} TEMPLATE {DB_PREFIX}_template")
        self.databases.append(db)
        redis_client().flushdb()
        log(f"seeding {ds.label}")
        seeded = run_seed(ds.env, components, incidents)
        ds.incident_code = seeded["incident_code"]
        ds.seed_seconds = seeded["seconds"]
        ds.paths = {name: p.format(code=ds.incident_code) for name, p in ENDPOINTS.items()}
        log(f"seeded in {ds.seed_seconds:.1f}s; incident page {ds.paths['incident']}")
        return ds

    # servers

    def start_beacon(self, server: str, ds: Dataset, port: int = PORT_BEACON, name="beacon"):
        argv = shlex.split(
            SERVERS[server].format(bin=BIN, app="statuspage.wsgi:application", port=port)
        )
        proc = self.procs.start(f"{name}-{server}-c{ds.components}-i{ds.incidents}", argv, ds.env)
        wait_http(port, "/api/v2/status.json", proc=proc)
        for path in ds.paths.values():  # warm every worker's cache of the outputs
            for _ in range(4):
                http_get(port, path)
        return proc

    def start_minimal(self, server: str, manifest: Path, port: int = PORT_MINIMAL):
        env = {
            **os.environ,
            "BENCH_MINIMAL_MANIFEST": str(manifest),
            "PYTHONPATH": str(BENCH),
            "PYTHONUNBUFFERED": "1",
        }
        argv = shlex.split(
            SERVERS[server].format(bin=BIN, app="minimal_app:application", port=port)
        )
        proc = self.procs.start(f"minimal-{server}", argv, env)
        wait_http(port, next(iter(json.loads(manifest.read_text()))), proc=proc)
        return proc

    def start_nginx(self, name: str, conf_text: str, port: int):
        prefix = self.tmp / name
        (prefix / "tmp").mkdir(parents=True, exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(conf_text)
        proc = self.procs.start(
            name, ["nginx", "-c", str(conf), "-p", str(prefix)], dict(os.environ)
        )
        wait_http(port, "/", proc=proc)
        return proc

    def capture(self, ds: Dataset, port: int = PORT_BEACON) -> tuple[Path, dict]:
        """Fetch what Beacon serves for each endpoint; lay it out for the minimal view and nginx."""
        out = self.tmp / f"bytes-c{ds.components}-i{ds.incidents}"
        files = out / "files"
        manifest, sizes = {}, {}
        for name, path in ds.paths.items():
            status, headers, body = http_get(port, path)
            if status != 200:
                raise RuntimeError(f"Beacon answered {status} for {path}")
            relative = path.lstrip("/") or "index.html"
            if relative.endswith("/"):
                relative += "index.html"
            target = files / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
            manifest[path] = [str(target), headers.get("Content-Type", "text/html")]
            sizes[name] = {"raw": len(body), "gzip": len(gzip.compress(body, 6))}
        for directory in [out, *(p for p in files.rglob("*") if p.is_dir()), files]:
            directory.chmod(0o755)
        manifest_path = out / "manifest.json"
        manifest_path.write_text(json.dumps(manifest))
        return manifest_path, sizes

    def cleanup(self) -> None:
        self.restore_services()
        stop_changers()
        self.procs.stop_all()
        if not self.args.keep_databases:
            for db in reversed(self.databases):
                with contextlib.suppress(Exception):
                    pg_execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        with contextlib.suppress(Exception):
            redis_client().flushdb()

    def restore_services(self) -> None:
        if self.pg_stopped:
            pg_start()
            self.pg_stopped = False
        if self.redis_stopped:
            redis_start()
            self.redis_stopped = False


def nginx_http(body: str, tmp: Path, user: str | None = None) -> str:
    user_line = f"user {user};\n" if user else ""
    return f"""{user_line}worker_processes auto;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {tmp}/tmp/body;
    proxy_temp_path {tmp}/tmp/proxy;
    fastcgi_temp_path {tmp}/tmp/fastcgi;
    uwsgi_temp_path {tmp}/tmp/uwsgi;
    scgi_temp_path {tmp}/tmp/scgi;
{body}
}}
"""


def nginx_plain_conf(tmp: Path, files: Path, port: int) -> str:
    return nginx_http(
        f"""    server {{
        listen {HOST}:{port};
        root {files};
        charset utf-8;
        location / {{ try_files $uri $uri/index.html =404; }}
    }}""",
        tmp,
    )


def nginx_beacon_conf(
    source: Path, tmp: Path, port: int, upstream: int, ds: Dataset, user: str | None = None
) -> str:
    """Beacon's shipped nginx config, pointed at this run's ports and directories.

    `listen` becomes this run's port, any upstream address (127.0.0.1, localhost, web,
    beacon or app with a port) becomes the benchmarked server, and paths ending in
    var/snapshots, var/media or staticfiles point at this run's var directory and the
    collected static files. A file without an `http {` block is
    taken to be server blocks and wrapped in this harness's `http` block.
    """
    text = source.read_text()
    text = re.sub(
        r"(?:127\.0\.0\.1|localhost|\[::1\]|web|beacon|app):\d{2,5}\b", f"{HOST}:{upstream}", text
    )
    listens = iter(range(1000))
    text = re.sub(
        r"^\s*listen\s+[^;]+;",
        lambda m: f"    listen {HOST}:{port};" if next(listens) == 0 else "",
        text,
        flags=re.M,
    )
    text = re.sub(r"[^\s;'\"]*/var/snapshots", str(ds.var_dir / "snapshots"), text)
    text = re.sub(r"[^\s;'\"]*/var/media", str(ds.var_dir / "media"), text)
    text = re.sub(r"[^\s;'\"]*/staticfiles", str(ROOT / "staticfiles"), text)
    text = re.sub(r"^\s*(ssl_|http2 |include\s+snippets)[^;]*;", "", text, flags=re.M)
    if re.search(r"^\s*http\s*\{", text, flags=re.M):
        return text
    return nginx_http(text, tmp, user)


def check_nginx_beacon(run: Run, source: Path, ds: Dataset, user: str | None) -> dict:
    """Start nginx with Beacon's config; per path, the status and whether a file answered."""
    text = nginx_beacon_conf(
        source, run.tmp / "nginx-beacon", PORT_NGINX_BEACON, PORT_BEACON, ds, user
    )
    run.start_nginx("nginx-beacon", text, PORT_NGINX_BEACON)
    checks = {}
    for path in ds.paths.values():
        status, headers, _ = http_get(PORT_NGINX_BEACON, path)
        # nginx's own ETag is "<mtime>-<size>" in hex; Django's is a hash.
        from_file = bool(re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', headers.get("ETag", "")))
        checks[path] = {"status": status, "from_file": from_file}
    log(f"nginx with {source.name}: {checks}")
    return checks


# --- stage: serve -------------------------------------------------------------------------


def stage_serve(run: Run, ds: Dataset) -> str:
    mode = run.mode
    candidates = [s for s in SERVERS if s.startswith("gunicorn") or (BIN / "granian").exists()]
    if run.args.server:
        candidates = [run.args.server]
    selection = {}
    for server in candidates:
        proc = run.start_beacon(server, ds)
        scores = {}
        for name in ("home", "summary"):
            scores[name] = wrk(
                f"http://{HOST}:{PORT_BEACON}{ds.paths[name]}", 64, mode.select_duration
            )
        run.procs.stop(proc)
        selection[server] = {
            "rps_home": scores["home"]["rps"],
            "rps_summary": scores["summary"]["rps"],
            "p99_home_ms": scores["home"]["p99_ms"],
            "non_200": scores["home"]["non_200"] + scores["summary"]["non_200"],
            "score": (scores["home"]["rps"] * scores["summary"]["rps"]) ** 0.5,
        }
        log(
            f"server {server}: / {scores['home']['rps']:.0f} rps, summary "
            f"{scores['summary']['rps']:.0f} rps"
        )
    best = max(selection, key=lambda s: selection[s]["score"])
    log(f"best server: {best}")
    run.results["server_selection"] = {
        "candidates": selection,
        "chosen": best,
        "command": SERVERS[best],
    }

    beacon = run.start_beacon(best, ds)
    # The production setup: a worker rebuilds after changes; one rebuild writes the files tree
    # nginx serves from.
    worker = run.procs.start("worker-serve", shlex.split(WORKER_CMD.format(bin=BIN)), ds.env)
    manage_shell(ds.env, REBUILD_CODE % 1)
    manifest, sizes = run.capture(ds)
    run.start_minimal(best, manifest)
    files = manifest.parent / "files"
    run.start_nginx(
        "nginx-plain", nginx_plain_conf(run.tmp / "nginx-plain", files, PORT_NGINX), PORT_NGINX
    )
    targets = {"beacon": PORT_BEACON, "minimal": PORT_MINIMAL, "nginx": PORT_NGINX}
    conf_source = Path(run.args.nginx_conf)
    nginx_beacon_note = None
    nginx_beacon_checks: dict = {}
    if conf_source.exists():
        try:
            nginx_beacon_checks = check_nginx_beacon(run, conf_source, ds, user=None)
            if any(c["status"] == 403 for c in nginx_beacon_checks.values()):
                # nginx's workers (nobody) cannot read files only Beacon's user may read.
                nginx_beacon_note = (
                    "nginx's workers (user nobody) got 403 for "
                    + ", ".join(p for p, c in nginx_beacon_checks.items() if c["status"] == 403)
                    + ": the snapshot files are not world-readable. Measured with the workers "
                    "running as Beacon's user instead."
                )
                log(nginx_beacon_note)
                for proc in list(run.procs.running):
                    if proc.name == "nginx-beacon":
                        run.procs.stop(proc)
                user = pwd.getpwuid(os.geteuid()).pw_name
                nginx_beacon_checks = check_nginx_beacon(run, conf_source, ds, user=user)
            targets["nginx_beacon"] = PORT_NGINX_BEACON
            bad = {p: c for p, c in nginx_beacon_checks.items() if c["status"] != 200}
            if bad:
                nginx_beacon_note = (nginx_beacon_note or "") + f" Not 200: {bad}."
        except Exception as error:  # report, do not stop the run
            nginx_beacon_note = f"could not start nginx with {conf_source}: {error}"
    else:
        nginx_beacon_note = f"{conf_source.relative_to(ROOT)} does not exist (yet): not measured"
    if nginx_beacon_note:
        log(nginx_beacon_note)

    runs: dict = {}
    for _ in range(mode.rounds):
        for connections in mode.connections:
            for endpoint, path in ds.paths.items():
                for target, port in targets.items():
                    result = wrk(
                        f"http://{HOST}:{port}{path}",
                        connections,
                        mode.duration,
                        count_codes=not target.startswith("nginx"),
                    )
                    runs.setdefault((target, endpoint, connections), []).append(result)
                    log(
                        f"{target:13} {endpoint:8} c{connections:<3} {result['rps']:9.0f} rps "
                        f"p99 {result['p99_ms']:7.1f} ms non-200 {result['non_200']} "
                        f"errors {result['socket_errors']}"
                    )
    table = []
    for connections in mode.connections:
        for endpoint in ds.paths:
            row = {
                "endpoint": endpoint,
                "path": ds.paths[endpoint],
                "connections": connections,
                "bytes": sizes[endpoint],
            }
            for target in targets:
                row[target] = median_result(runs[(target, endpoint, connections)])
            row["ratio_minimal"] = row["beacon"]["rps"] / row["minimal"]["rps"]
            if "nginx_beacon" in row:
                row["ratio_nginx"] = row["nginx_beacon"]["rps"] / row["nginx"]["rps"]
            table.append(row)
    run.results["serve"] = {
        "dataset": ds.label,
        "server": best,
        "rows": table,
        "nginx_beacon": {
            "config": str(conf_source),
            "note": nginx_beacon_note,
            "checks": nginx_beacon_checks,
        },
    }
    run.procs.stop(beacon)
    run.procs.stop(worker)
    for proc in list(run.procs.running):
        if proc.name.startswith(("minimal", "nginx")):
            run.procs.stop(proc)
    return best


# --- stage: growth ------------------------------------------------------------------------

REBUILD_CODE = """
import json, logging, time
from django.conf import settings
try:
    from statuspage.public.snapshots.build import rebuild_hot_snapshots
except ImportError:
    try:  # a checkout from before the snapshot store became a package
        from statuspage.public.snapshots import rebuild_hot_snapshots
    except ImportError:
        rebuild_hot_snapshots = None
if rebuild_hot_snapshots is None:
    print("BENCHJSON " + json.dumps({"available": False}))
else:
    from statuspage.public import public_cache

    outputs = []

    class Collect(logging.Handler):
        def emit(self, record):
            if str(record.msg).startswith("snapshot rebuilt"):
                outputs.append(list(record.args))

    logging.getLogger("beacon.snapshots").addHandler(Collect())
    rebuild_hot_snapshots()  # imports, templates, connections
    seconds, built = [], []
    for _ in range(%d):
        # A change: a new generation, old enough to be rebuilt at once (it must have been
        # still for BEACON_SNAPSHOT_SETTLE_SECONDS, which is coalescing, not building).
        public_cache.invalidate()
        time.sleep(settings.BEACON_SNAPSHOT_SETTLE_SECONDS + 0.05)
        outputs.clear()
        began = time.perf_counter()
        built.append(rebuild_hot_snapshots())
        seconds.append(time.perf_counter() - began)
    print("BENCHJSON " + json.dumps(
        {"available": True, "seconds": seconds, "built": built, "outputs": outputs}
    ))
"""


def measure_rebuild(ds: Dataset, port: int, repeats: int) -> dict:
    """Time snapshots.build.rebuild_hot_snapshots(); else cold builds over HTTP."""
    result = manage_shell(ds.env, REBUILD_CODE % repeats)
    if result["available"]:
        seconds = result["seconds"]
        return {
            "kind": "rebuild_hot_snapshots()",
            "seconds": statistics.median(seconds),
            "all": seconds,
            "outputs_built": result["built"],
            # The last repeat, slowest first: [key, bytes, seconds].
            "slowest": sorted(result["outputs"], key=lambda o: -o[2])[:5],
        }
    totals, per_path = [], {name: [] for name in ds.paths}
    for _ in range(repeats):
        redis_client().flushdb()  # every cached output and the page settings
        total = 0.0
        for name, path in ds.paths.items():
            began = time.perf_counter()
            status, _, _ = http_get(port, path, timeout=120)
            elapsed = time.perf_counter() - began
            if status != 200:
                raise RuntimeError(f"cold GET {path}: {status}")
            per_path[name].append(elapsed)
            total += elapsed
        totals.append(total)
    return {
        "kind": "cold build (cache cleared, one GET per output)",
        "seconds": statistics.median(totals),
        "all": totals,
        "per_path": {name: statistics.median(v) for name, v in per_path.items()},
    }


def stage_growth(run: Run, server: str, first: Dataset | None) -> None:
    mode = run.mode
    rows = []
    for components, incidents in mode.sizes:
        if first and (components, incidents) == (first.components, first.incidents):
            ds = first
        else:
            ds = run.dataset(components, incidents)
        beacon = run.start_beacon(server, ds)
        manifest, sizes = run.capture(ds)
        rebuild = measure_rebuild(ds, PORT_BEACON, 3)
        for path in ds.paths.values():  # warm again after the cold builds
            for _ in range(4):
                http_get(PORT_BEACON, path)
        minimal = run.start_minimal(server, manifest)
        row = {
            "components": components,
            "incidents": incidents,
            "seed_seconds": ds.seed_seconds,
            "rebuild": rebuild,
            "endpoints": {},
        }
        for endpoint in ("home", "summary"):
            path = ds.paths[endpoint]
            beacon_result = wrk(f"http://{HOST}:{PORT_BEACON}{path}", 64, mode.duration)
            minimal_result = wrk(f"http://{HOST}:{PORT_MINIMAL}{path}", 64, mode.duration)
            row["endpoints"][endpoint] = {
                "bytes": sizes[endpoint],
                "beacon": beacon_result,
                "minimal": minimal_result,
                "ratio_minimal": beacon_result["rps"] / minimal_result["rps"],
            }
            log(
                f"{ds.label}: {endpoint} {sizes[endpoint]['raw']:,} B, beacon "
                f"{beacon_result['rps']:.0f} rps, minimal {minimal_result['rps']:.0f} rps"
            )
        log(f"{ds.label}: rebuild {rebuild['seconds']:.3f}s ({rebuild['kind']})")
        rows.append(row)
        run.procs.stop(beacon)
        run.procs.stop(minimal)
        if ds is not first and not run.args.keep_databases:
            pg_execute(f"DROP DATABASE IF EXISTS {ds.db} WITH (FORCE)")
            run.databases.remove(ds.db)
    run.results["growth"] = {"server": server, "rows": rows}


# --- stage: stampede ----------------------------------------------------------------------

CHANGER_CODE = """
import json, sys, time
from django.db import connection
from components.models import Component
from components.services import component_set_status
print("BENCHJSON-READY", flush=True)
for line in sys.stdin:
    name, status = json.loads(line)
    failure = None
    for _ in range(300):
        try:
            connection.close()  # a fresh connection: the server may have restarted
            component = Component.objects.get(name=name)
            component_set_status(component=component, status=status, note="bench")
            failure = None
            break
        except Exception as error:
            failure = repr(error)
            time.sleep(0.1)
    reply = {"error": failure} if failure else {"committed_at": time.time()}
    print("BENCHJSON " + json.dumps(reply), flush=True)
"""
_changers: dict[str, subprocess.Popen] = {}


def change_status(ds: Dataset, name: str, status: str) -> float:
    """Set a component's status through components.services.component_set_status.

    A `manage.py shell -c` kept running per database, so the time Django takes to start is
    not counted in how long a change takes to be public.
    """
    changer = _changers.get(ds.db)
    if changer is None or changer.poll() is not None:
        log_file = (ds.var_dir / "changer.log").open("ab")
        changer = subprocess.Popen(
            [str(BIN / "python"), "manage.py", "shell", "-c", CHANGER_CODE],
            cwd=ROOT,
            env=ds.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            start_new_session=True,
        )
        log_file.close()
        for _ in range(100):  # the shell may say something first
            line = changer.stdout.readline()
            if not line or line.strip() == "BENCHJSON-READY":
                break
        if line.strip() != "BENCHJSON-READY":
            raise RuntimeError(f"the change helper did not start; see {ds.var_dir}/changer.log")
        _changers[ds.db] = changer
    changer.stdin.write(json.dumps([name, status]) + "\n")
    changer.stdin.flush()
    reply = bench_json("".join(iter_until_reply(changer)))
    if "error" in reply:
        raise RuntimeError(f"status change failed: {reply['error']}")
    return reply["committed_at"]


def iter_until_reply(changer: subprocess.Popen):
    while line := changer.stdout.readline():
        yield line
        if line.startswith("BENCHJSON "):
            return


def stop_changers() -> None:
    for changer in _changers.values():
        with contextlib.suppress(Exception):
            changer.stdin.close()
            changer.wait(10)
        if changer.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(changer.pid, signal.SIGKILL)
            changer.wait()
    _changers.clear()


def published_status(port: int, name: str) -> str | None:
    with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
        code, _, body = http_get(port, "/api/v2/components.json", timeout=5)
        if code == 200:
            for component in json.loads(body)["components"]:
                if component["name"] == name:
                    return component["status"]
    return None


def wait_published(port: int, name: str, status: str, timeout: float = 60) -> float | None:
    """Seconds until /api/v2/components.json shows `status` for `name`; None on timeout."""
    began = time.time()
    while time.time() - began < timeout:
        if published_status(port, name) == status:
            return time.time()
        time.sleep(0.05)
    return None


def log_offsets(procs: list) -> dict:
    return {p.log_path: p.log_path.stat().st_size for p in procs}


def rebuilt_lines(offsets: dict) -> list[str]:
    lines = []
    for path, offset in offsets.items():
        with path.open("rb") as f:
            f.seek(offset)
            lines += [m.group(0) for m in REBUILT_LINE.finditer(f.read().decode(errors="replace"))]
    return lines


def snapshots_available(ds: Dataset) -> bool:
    code = (
        "import json, importlib.util\n"
        "print('BENCHJSON ' + json.dumps("
        "{'available': importlib.util.find_spec('statuspage.public.snapshots') is not None}))"
    )
    return manage_shell(ds.env, code)["available"]


def stage_stampede(run: Run, server: str, ds: Dataset) -> None:
    mode = run.mode
    beacon = run.start_beacon(server, ds)
    worker = run.procs.start("worker", shlex.split(WORKER_CMD.format(bin=BIN)), ds.env)
    time.sleep(3)
    available = snapshots_available(ds)
    url = f"http://{HOST}:{PORT_BEACON}/"
    results: dict = {"snapshots_module": available}

    # A change in the middle of a full load.
    baseline = wrk(url, 64, mode.duration)
    load = wrk_background(url, 64, mode.duration)
    time.sleep(mode.duration / 3)
    offsets = log_offsets([beacon, worker])
    committed = change_status(ds, ds.probe, "major_outage")
    visible = wait_published(PORT_BEACON, ds.probe, "major_outage", timeout=mode.duration)
    under_load = wrk_collect(load)
    time.sleep(2)
    lines = rebuilt_lines(offsets)
    results["change_under_load"] = {
        "baseline": baseline,
        "load": under_load,
        "rebuilds_total": len(lines) if available else None,
        "rebuilds_home": sum(1 for line in lines if line.endswith("path=/")) if available else None,
        "visible_after_s": (visible - committed) if visible else None,
    }
    log(
        f"change under load: {len(lines)} rebuild lines, non-200 {under_load['non_200']}, "
        f"errors {under_load['socket_errors']}, visible after "
        f"{results['change_under_load']['visible_after_s']}"
    )
    change_status(ds, ds.probe, "operational")
    wait_published(PORT_BEACON, ds.probe, "operational", timeout=30)
    time.sleep(2)

    # Query strings and no-cache headers.
    bypass = {}
    for endpoint in ("home", "summary"):
        target = f"http://{HOST}:{PORT_BEACON}{ds.paths[endpoint]}"
        fixed = wrk(target, 64, mode.duration, script="fixed.lua")
        offsets = log_offsets([beacon, worker])
        tricked = wrk(target, 64, mode.duration, script="bypass.lua")
        lines = rebuilt_lines(offsets)
        bypass[endpoint] = {
            "fixed": fixed,
            "bypass": tricked,
            "ratio": tricked["rps"] / fixed["rps"],
            "rebuilds": len(lines) if available else None,
        }
        log(
            f"bypass {endpoint}: {tricked['rps']:.0f} rps vs {fixed['rps']:.0f} rps plain, "
            f"{len(lines)} rebuild lines"
        )
    results["bypass"] = bypass
    run.results["stampede"] = results
    run.procs.stop(worker)
    run.procs.stop(beacon)


# --- stage: failure -----------------------------------------------------------------------


def pg_stop() -> None:
    version, cluster = pg_cluster()
    run_cmd(["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "stop", "-m", "fast"])


def pg_start() -> None:
    version, cluster = pg_cluster()
    run_cmd(["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "start"], check=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if subprocess.run(["pg_isready", "-h", HOST, "-q"]).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError("PostgreSQL did not come back")


def redis_stop() -> None:
    run_cmd(["redis-cli", "-h", HOST, "-p", "6379", "shutdown", "nosave"], check=False)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if subprocess.run(["redis-cli", "-h", HOST, "ping"], capture_output=True).returncode:
            return
        time.sleep(0.1)


def redis_start() -> None:
    run_cmd(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=False,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ping = subprocess.run(["redis-cli", "-h", HOST, "ping"], capture_output=True, text=True)
        if ping.stdout.strip() == "PONG":
            return
        time.sleep(0.1)
    raise RuntimeError("Redis did not come back")


def outage(run: Run, ds: Dataset, name: str, stop, start, flag: str) -> dict:
    """Load / and the summary, stop a service for mode.outage seconds, then make a change."""
    seconds = run.mode.outage
    lead, tail = 5, 20
    loads = {
        endpoint: wrk_background(
            f"http://{HOST}:{PORT_BEACON}{ds.paths[endpoint]}", 32, lead + seconds + tail, threads=1
        )
        for endpoint in ("home", "summary")
    }
    time.sleep(lead)
    try:
        setattr(run, flag, True)
        stop()
        log(f"{name} stopped for {seconds}s")
        time.sleep(seconds)
    finally:
        start()
        setattr(run, flag, False)
    returned = time.time()
    log(f"{name} is back")
    status = (
        "major_outage"
        if published_status(PORT_BEACON, ds.probe) != "major_outage"
        else "operational"
    )
    committed = None
    for _ in range(20):  # the first connections after a restart may still fail
        try:
            committed = change_status(ds, ds.probe, status)
            break
        except RuntimeError:
            time.sleep(0.5)
    visible = wait_published(PORT_BEACON, ds.probe, status, timeout=60) if committed else None
    results = {endpoint: wrk_collect(proc) for endpoint, proc in loads.items()}
    out = {
        "outage_s": seconds,
        "load": results,
        "non_200": sum(r["non_200"] for r in results.values()),
        "socket_errors": sum(r["socket_errors"] for r in results.values()),
        "change_committed_after_return_s": (committed - returned) if committed else None,
        "visible_after_return_s": (visible - returned) if visible else None,
        "visible_after_commit_s": (visible - committed) if visible and committed else None,
    }
    log(
        f"{name}: non-200 {out['non_200']}, socket errors {out['socket_errors']}, change "
        f"visible {out['visible_after_return_s']}s after return"
    )
    return out


def stage_failure(run: Run, server: str, ds: Dataset) -> None:
    beacon = run.start_beacon(server, ds)
    worker = run.procs.start("worker-failure", shlex.split(WORKER_CMD.format(bin=BIN)), ds.env)
    time.sleep(3)
    results: dict = {}
    results["postgresql"] = outage(run, ds, "PostgreSQL", pg_stop, pg_start, "pg_stopped")
    time.sleep(3)
    results["redis"] = outage(run, ds, "Redis", redis_stop, redis_start, "redis_stopped")
    time.sleep(3)

    # The worker killed mid-rebuild, then the next change must still be published.
    other = f"Service {max(1, ds.components - 1)}"
    offset = worker.log_path.stat().st_size
    committed = change_status(ds, ds.probe, "major_outage")
    seen = None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and seen is None:
        with worker.log_path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        for line in text.splitlines():
            if "snapshot" in line.lower() or "received" in line.lower():
                seen = line.strip()
                break
        time.sleep(0.005)
    killed_at = time.time()
    run.procs.stop(worker, sig=signal.SIGKILL)
    with worker.log_path.open("rb") as f:
        f.seek(offset)
        finished_before_kill = bool(REBUILT_LINE.search(f.read().decode(errors="replace")))
    log(f"worker killed {killed_at - committed:.3f}s after the change (saw: {seen!r})")
    worker = run.procs.start("worker-failure-2", shlex.split(WORKER_CMD.format(bin=BIN)), ds.env)
    time.sleep(3)
    second = change_status(ds, other, "major_outage")
    visible = wait_published(PORT_BEACON, other, "major_outage", timeout=60)
    results["worker_killed"] = {
        "killed_after_change_s": killed_at - committed,
        "task_line_seen_before_kill": seen,
        "rebuild_finished_before_kill": finished_before_kill,
        "next_change_visible_after_s": (visible - second) if visible else None,
        "killed_change_visible": published_status(PORT_BEACON, ds.probe) == "major_outage",
    }
    log(
        f"worker kill: next change visible after "
        f"{results['worker_killed']['next_change_visible_after_s']}s"
    )
    change_status(ds, ds.probe, "operational")
    change_status(ds, other, "operational")
    run.results["failure"] = results
    run.procs.stop(worker)
    run.procs.stop(beacon)


# --- machine, report ----------------------------------------------------------------------


def version_of(argv: list[str], pattern: str = r"(\d+(?:\.\d+)+)") -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except OSError:
        return "not installed"
    match = re.search(pattern, out.stdout + out.stderr)
    return match.group(1) if match else "?"


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def machine() -> dict:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.1f} GiB"
    py = str(BIN / "python")
    pg = "?"
    with contextlib.suppress(Exception):
        pg = pg_execute("SHOW server_version")[0][0]
    return {
        "loadavg_at_start": loadavg(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": memory,
        "kernel": platform.release(),
        "os": version_of(["cat", "/etc/debian_version"]),
        "python": version_of([py, "-V"]),
        "django": version_of([py, "-c", "import django; print(django.__version__)"]),
        "gunicorn": version_of([str(BIN / "gunicorn"), "--version"]),
        "granian": version_of([str(BIN / "granian"), "--version"]),
        "nginx": version_of(["nginx", "-v"]),
        "postgresql": pg,
        "redis": version_of(["redis-server", "--version"], r"v=(\S+)"),
        "wrk": version_of(["wrk", "-v"], r"wrk (\S+)"),
        "git": version_of(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], r"([0-9a-f]{7,})"
        ),
        "git_dirty": bool(
            subprocess.run(
                ["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True
            ).stdout.strip()
        ),
    }


def _ok(condition: bool | None) -> str:
    return "n/a" if condition is None else ("yes" if condition else "**no**")


def _na(value) -> str:
    return "n/a" if value is None else str(value)


def _yes(value) -> str:
    return "yes" if value else "no"


def _meets_minimal(row: dict) -> bool:
    return row["ratio_minimal"] >= TARGET_RATIO_MINIMAL


def _meets_256(result: dict) -> bool:
    clean = not result["non_200"] and not result["socket_errors"]
    return clean and result["p99_ms"] < TARGET_P99_256_MS


def _meets_nginx(row: dict) -> bool:
    return row["ratio_nginx"] >= TARGET_RATIO_NGINX


def _meets_rebuild(row: dict) -> bool:
    return row["rebuild"]["seconds"] < TARGET_REBUILD_S


def _meets_growth(endpoint: dict) -> bool:
    return endpoint["ratio_minimal"] >= TARGET_GROWTH_RATIO


def _n(value, digits=0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _kb(size: int) -> str:
    return f"{size / 1024:,.1f} KiB"


def render_markdown(results: dict) -> str:
    m = results["machine"]
    out = [
        f"Last run: {results['started_at']} ({results['mode']} run, "
        f"{results['finished_in_s'] / 60:.0f} minutes), commit {m['git']}"
        f"{' with uncommitted changes' if m['git_dirty'] else ''}. "
        f"Raw numbers: `bench/results/{results['file']}` (not committed).",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, Debian {m['os']}, "
        f"Linux {m['kernel']}. Python {m['python']}, Django {m['django']}, gunicorn "
        f"{m['gunicorn']}, granian {m['granian']}, nginx {m['nginx']}, PostgreSQL "
        f"{m['postgresql']}, Redis {m['redis']}, wrk {m['wrk']}. Load average (1, 5, 15 "
        f"min) {m.get('loadavg_at_start', '?')} at the start and "
        f"{m.get('loadavg_at_end', '?')} at the end: other work on the machine competes "
        "with the benchmark. wrk, the servers, "
        "PostgreSQL and Redis share the same CPUs, so read the ratios (measured side by side, "
        "in the same run) rather than the absolute numbers.",
        "",
    ]
    selection = results.get("server_selection")
    if selection:
        out += [
            "### Server",
            "",
            "Each candidate served Beacon for a short `wrk -t2 -c64` on `/` and the summary; "
            "the best (geometric mean of both) serves Beacon and the minimal view in every "
            "other table.",
            "",
            "| Server | `/` req/s | summary req/s | `/` p99 | non-200 |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for name, c in selection["candidates"].items():
            chosen = " (chosen)" if name == selection["chosen"] else ""
            out.append(
                f"| {name}{chosen} | {_n(c['rps_home'])} | {_n(c['rps_summary'])} | "
                f"{_n(c['p99_home_ms'], 1)} ms | {c['non_200']} |"
            )
        chosen = selection["command"].format(
            bin=".venv/bin", app="statuspage.wsgi:application", port=PORT_BEACON
        )
        out += ["", f"Chosen: `{chosen}`", ""]
    serve = results.get("serve")
    if serve:
        has_nb = any("nginx_beacon" in r for r in serve["rows"])
        out += [
            f"### Public endpoints side by side ({serve['dataset']})",
            "",
            "Medians of "
            f"{serve['rows'][0]['beacon']['runs']} run(s) of `wrk -t2 -c<N> -d<D>s --latency`. "
            "*Minimal* is bench/minimal_app.py returning the same bytes from memory under the "
            "same server; *nginx* serves them as static files.",
            "",
            "| Endpoint | Conns | Size (gzip) | Beacon req/s | p50 | p99 | non-200 / errors | "
            "Minimal req/s | Beacon / minimal | nginx req/s |"
            + (" Beacon's nginx req/s | / nginx |" if has_nb else ""),
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
            + (" ---: | ---: |" if has_nb else ""),
        ]
        for r in serve["rows"]:
            b = r["beacon"]
            line = (
                f"| `{r['path']}` | {r['connections']} | {_kb(r['bytes']['raw'])} "
                f"({_kb(r['bytes']['gzip'])}) | {_n(b['rps'])} | {_n(b['p50_ms'], 1)} ms | "
                f"{_n(b['p99_ms'], 1)} ms | {b['non_200']} / {b['socket_errors']} | "
                f"{_n(r['minimal']['rps'])} | {r['ratio_minimal']:.0%} | {_n(r['nginx']['rps'])} |"
            )
            if has_nb:
                nb = r["nginx_beacon"]
                flag = f" ({nb['non_200']:,} non-200)" if nb["non_200"] else ""
                line += f" {_n(nb['rps'])}{flag} | {r['ratio_nginx']:.0%} |"
            out.append(line)
        out += [""]
        rows64 = [r for r in serve["rows"] if r["connections"] == 64]
        rows256 = [r for r in serve["rows"] if r["connections"] == 256]
        out += [
            *(
                [f"Beacon's nginx configuration: {serve['nginx_beacon']['note']}", ""]
                if has_nb and serve["nginx_beacon"]["note"]
                else []
            ),
            *(
                [
                    "Answered by nginx from a snapshot file (not proxied to Django): "
                    + ", ".join(
                        f"`{p}` {_yes(c['from_file'])}"
                        for p, c in serve["nginx_beacon"]["checks"].items()
                    ),
                    "",
                ]
                if has_nb
                else []
            ),
            "Targets:",
            "",
            f"- Beacon ≥ {TARGET_RATIO_MINIMAL:.0%} of the minimal view: "
            + ", ".join(
                f"`{r['path']}` c{r['connections']} {_ok(_meets_minimal(r))}" for r in serve["rows"]
            ),
            f"- p99 < {TARGET_P99_64_MS} ms at 64 connections: "
            + ", ".join(
                f"`{r['path']}` {_ok(r['beacon']['p99_ms'] < TARGET_P99_64_MS)}" for r in rows64
            ),
            f"- zero errors and p99 < {TARGET_P99_256_MS} ms at 256 connections: "
            + ", ".join(f"`{r['path']}` {_ok(_meets_256(r['beacon']))}" for r in rows256),
            f"- Beacon's nginx configuration ≥ {TARGET_RATIO_NGINX:.0%} of plain nginx: "
            + (
                ", ".join(
                    f"`{r['path']}` c{r['connections']} {_ok(_meets_nginx(r))}"
                    for r in serve["rows"]
                )
                if has_nb
                else f"not measured: {serve['nginx_beacon']['note']}"
            ),
            "",
        ]
    growth = results.get("growth")
    if growth:
        out += [
            "### Cost growth",
            "",
            "`wrk -t2 -c64` on `/` and the summary, Beacon and the minimal view serving the "
            "same bytes. Rebuild: the median of three; "
            + ", ".join(sorted({f"*{r['rebuild']['kind']}*" for r in growth["rows"]}))
            + ".",
            "",
            "| Components | Past incidents | Endpoint | Size (gzip) | Beacon req/s | p99 | "
            "Minimal req/s | Beacon / minimal | Rebuild |",
            "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in growth["rows"]:
            for endpoint, e in r["endpoints"].items():
                rebuild = f"{r['rebuild']['seconds']:.3f} s" if endpoint == "home" else ""
                out.append(
                    f"| {r['components']:,} | {r['incidents']:,} | {endpoint} | "
                    f"{_kb(e['bytes']['raw'])} ({_kb(e['bytes']['gzip'])}) | "
                    f"{_n(e['beacon']['rps'])} | {_n(e['beacon']['p99_ms'], 1)} ms | "
                    f"{_n(e['minimal']['rps'])} | {e['ratio_minimal']:.0%} | {rebuild} |"
                )
        big = [r for r in growth["rows"] if r["components"] >= 1000]
        out += [""]
        slow = [r for r in growth["rows"] if r["rebuild"].get("slowest")]
        if slow:
            out += ["Slowest outputs of a rebuild (one change, all hot outputs):", ""]
            for r in slow:
                parts = ", ".join(f"`{key}` {sec:.3f} s" for key, _, sec in r["rebuild"]["slowest"])
                built = r["rebuild"]["outputs_built"][-1]
                out.append(
                    f"- {r['components']:,} components, {r['incidents']:,} incidents "
                    f"({built} outputs): {parts}"
                )
            out += [""]
        if big:
            out += [
                "Targets at 1,000 components: rebuild < 1 s: "
                + ", ".join(f"{r['incidents']:,} incidents {_ok(_meets_rebuild(r))}" for r in big)
                + f"; req/s ≥ {TARGET_GROWTH_RATIO:.0%} of the minimal view: "
                + ", ".join(
                    f"{r['incidents']:,} incidents {e} {_ok(_meets_growth(v))}"
                    for r in big
                    for e, v in r["endpoints"].items()
                ),
                "",
            ]
    stampede = results.get("stampede")
    if stampede:
        c = stampede["change_under_load"]
        out += [
            "### Stampede and bypass",
            "",
            "Snapshot module present: "
            + ("yes." if stampede["snapshots_module"] else "no (rebuilds cannot be counted)."),
            "",
            f"- A status change in the middle of `wrk -t2 -c64` on `/`: "
            f"{_n(c['load']['rps'])} req/s during the change vs {_n(c['baseline']['rps'])} "
            f"before; rebuilds of `/`: {_na(c['rebuilds_home'])} "
            f"(all outputs: {_na(c['rebuilds_total'])}); "
            f"non-200: {c['load']['non_200']}, socket errors: {c['load']['socket_errors']}; "
            f"p99 {_n(c['load']['p99_ms'], 1)} ms; the change was public after "
            f"{_n(c['visible_after_s'], 2)} s.",
        ]
        for endpoint, b in stampede["bypass"].items():
            out.append(
                f"- `{endpoint}` with `?x=<random>` and `Cache-Control: no-cache`, "
                f"`Pragma: no-cache`: {_n(b['bypass']['rps'])} req/s vs {_n(b['fixed']['rps'])} "
                f"for the plain request ({b['ratio']:.0%}); rebuilds during the run: "
                f"{b['rebuilds'] if b['rebuilds'] is not None else 'n/a'}; non-200: "
                f"{b['bypass']['non_200']}."
            )
        out += [""]
    failure = results.get("failure")
    if failure:
        out += [
            "### Failure runs",
            "",
            "Load: two `wrk -t1 -c32` on `/` and the summary throughout. After the service "
            "returns, a component status change is made (`manage.py shell`) and "
            "`/api/v2/components.json` polled until it shows it.",
            "",
            "| Failure | Outage | non-200 | socket errors | change public after return | "
            "after its commit |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for key, label in (("postgresql", "PostgreSQL stopped"), ("redis", "Redis stopped")):
            f = failure.get(key)
            if f:
                out.append(
                    f"| {label} | {f['outage_s']} s | {f['non_200']:,} | {f['socket_errors']:,} | "
                    f"{_n(f['visible_after_return_s'], 2)} s | "
                    f"{_n(f['visible_after_commit_s'], 2)} s |"
                )
        w = failure.get("worker_killed")
        if w:
            out += [
                "",
                f"Worker killed (SIGKILL to the whole Celery worker) "
                f"{w['killed_after_change_s']:.2f} s after a change "
                f"(task line seen before the kill: {_yes(w['task_line_seen_before_kill'])}; "
                f"rebuild already finished: {_yes(w['rebuild_finished_before_kill'])}); "
                f"a new worker started; the next change was public after "
                f"{_n(w['next_change_visible_after_s'], 2)} s; the killed change is public: "
                f"{'yes' if w['killed_change_visible'] else '**no**'}.",
            ]
        out += [""]
    out += ["### Commands", "", "```"]
    out += [f"$ {c}" for c in results.get("commands", [])]
    out += ["```"]
    return "\n".join(out)


def update_doc(results: dict) -> None:
    text = DOC.read_text() if DOC.exists() else f"# Performance\n\n{DOC_START}\n{DOC_END}\n"
    if DOC_START not in text:
        text += f"\n{DOC_START}\n{DOC_END}\n"
    head, rest = text.split(DOC_START, 1)
    _, tail = rest.split(DOC_END, 1)
    DOC.write_text(f"{head}{DOC_START}\n{render_markdown(results)}\n{DOC_END}{tail}")


def commands(results: dict) -> list[str]:
    server = results.get("server_selection", {}).get("chosen") or results.get("growth", {}).get(
        "server"
    )
    listed = [" ".join(["bench/run.py", *results["argv"][1:]])]
    if server:
        listed.append(
            SERVERS[server].format(
                bin=".venv/bin", app="statuspage.wsgi:application", port=PORT_BEACON
            )
        )
        listed.append(
            "BENCH_MINIMAL_MANIFEST=... PYTHONPATH=bench "
            + SERVERS[server].format(
                bin=".venv/bin", app="minimal_app:application", port=PORT_MINIMAL
            )
        )
    listed.append(
        f"nginx -c <tmp>/nginx-plain/nginx.conf -p <tmp>/nginx-plain   "
        f"# worker_processes auto, access_log off, sendfile, port {PORT_NGINX}"
    )
    listed.append(WORKER_CMD.format(bin=".venv/bin"))
    seen = set()
    for section in ("serve", "growth"):
        for row in results.get(section, {}).get("rows", []):
            for value in row.values():
                if isinstance(value, dict):
                    for inner in [value, *value.values()]:
                        if isinstance(inner, dict) and "command" in inner:
                            cmd = re.sub(
                                r"http://\S+", "http://127.0.0.1:<port><path>", inner["command"]
                            )
                            if cmd not in seen:
                                seen.add(cmd)
                                listed.append(cmd)
    for stage in ("stampede",):
        if stage in results:
            listed.append(
                "wrk ... -s bench/wrk/fixed.lua / -s bench/wrk/bypass.lua "
                "(random ?x= and no-cache headers)"
            )
    if "failure" in results:
        listed += [
            "pg_ctlcluster --skip-systemctl-redirect <version> main stop -m fast   # ... start",
            "redis-cli shutdown nosave; redis-server --daemonize yes --bind 127.0.0.1 -::1 "
            "--port 6379 --save '' --appendonly no",
        ]
    return listed


# --- main ---------------------------------------------------------------------------------


def main() -> int:
    if Path(sys.prefix).resolve() != VENV.resolve() and (BIN / "python").exists():
        os.execv(str(BIN / "python"), [str(BIN / "python"), *sys.argv])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--stages",
        default="serve,growth,stampede,failure",
        help="comma-separated: serve, growth, stampede, failure",
    )
    parser.add_argument("--duration", type=int, help="seconds per wrk run (default 10, quick 3)")
    parser.add_argument("--rounds", type=int, help="repeats of the side-by-side runs")
    parser.add_argument("--server", choices=sorted(SERVERS), help="skip the server selection")
    parser.add_argument("--outage", type=int, help="seconds PostgreSQL/Redis stay stopped")
    parser.add_argument("--sizes", help="growth sizes, e.g. 10x1000,1000x100000")
    parser.add_argument(
        "--nginx-conf", default=str(DEFAULT_NGINX_CONF), help="the nginx configuration Beacon ships"
    )
    parser.add_argument("--keep-databases", action="store_true")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite performance.md")
    args = parser.parse_args()

    quick = args.quick
    mode = Mode(
        quick=quick,
        duration=args.duration or (3 if quick else 10),
        select_duration=3 if quick else 5,
        rounds=args.rounds or (1 if quick else 3),
        sizes=[tuple(int(n) for n in s.split("x")) for s in args.sizes.split(",")]
        if args.sizes
        else (SIZES_QUICK if quick else SIZES_FULL),
        outage=args.outage or (10 if quick else 60),
    )
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed: apt-get install -y wrk nginx")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)

    run = Run(args, mode)
    began = time.monotonic()

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    failed = None
    try:
        run.results["machine"] = machine()
        headline = run.dataset(*mode.sizes[0])
        server = args.server or "gunicorn-sync-w3"
        if "serve" in stages:
            server = stage_serve(run, headline)
        if "growth" in stages:
            stage_growth(run, server, headline)
        if "stampede" in stages:
            stage_stampede(run, server, headline)
        if "failure" in stages:
            stage_failure(run, server, headline)
    except BaseException as error:  # keep what was measured; clean up below
        failed = f"{type(error).__name__}: {error}"
        log(f"run failed: {failed}")
        run.results["failed"] = failed
    finally:
        run.cleanup()
    run.results["finished_in_s"] = time.monotonic() - began
    run.results.setdefault("machine", {})["loadavg_at_end"] = loadavg()
    stamp = run.started.strftime("%Y%m%dT%H%M%SZ")
    run.results["file"] = f"{stamp}.json"
    run.results["commands"] = commands(run.results)
    out = RESULTS_DIR / run.results["file"]
    out.write_text(json.dumps(run.results, indent=2, default=str))
    log(f"results: {out.relative_to(ROOT)}")
    if not args.no_doc and not failed:
        update_doc(run.results)
        log(f"updated {DOC.relative_to(ROOT)}")
    if failed:
        log(f"logs kept in {run.tmp}")
    else:
        shutil.rmtree(run.tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

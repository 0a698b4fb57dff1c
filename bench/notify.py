"""Subscriber notifications at scale: one incident update to N subscribers by email.

    .venv/bin/python bench/notify.py [--sizes 10000,100000] [--smtp auto|smtp-sink|aiosmtpd|both]

For each size N, seeds a database (beacon_bench_notify_seed) with N confirmed email
subscribers who must hear about a component "API" (90 % subscribed to everything, 10 % to
"API" only) and N / 6 more who must not (subscribed to "Website" only, unconfirmed, or
disabled), so the engine's filtering runs at full size. Then, per SMTP server, on a fresh
copy of that database (beacon_bench_notify):

- a local SMTP server in its own process: Postfix's `smtp-sink` (a C test server that
  throws messages away; fetched with `apt-get download postfix` and unpacked under
  ~/.cache/beacon-bench, never installed) and/or aiosmtpd with a handler that only counts
  (pure Python, slower: the reference a Python mail relay would be);
- the real Celery worker (`-Q notify --concurrency 2 --prefetch-multiplier 1`, prefork, one
  process per core) and beat (its sweeper is part of the engine);
- `incidents.services.incident_create` in a `manage.py shell` puts "API" in a major outage
  with deliver_notifications; from its commit the run measures the time to the first message
  the server accepted and to the last (the ledger's sent_at), messages per second and the
  worker's CPU;
- exactly once: the ledger must hold one sent row per expected recipient and nothing else,
  and the server's own count of messages must be the same number;
- the reference on the same server: two plain smtplib processes (as many as the worker's)
  sending N copies of the same message, 500 per connection like a batch: what the server and
  smtplib alone allow.

Target (issue: subscriber notifications): 100,000 subscribers in under 2 minutes. Results:
bench/results/notify-<time>.json and the section of docs/performance.md between the
bench:notify markers. Uses Redis db 7 (flushed per run) and ports 18120-18121.
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import redis
from checks import cpu_seconds
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
    pg_execute,
    run_cmd,
)

DB = "beacon_bench_notify"
SEED_DB = f"{DB}_seed"
REDIS_DB = 7
SMTP_PORTS = {"smtp-sink": 18120, "aiosmtpd": 18121}
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "beacon-bench"
DOC_START = "<!-- bench:notify:start -->"
DOC_END = "<!-- bench:notify:end -->"
TARGET_SIZE = 100_000
TARGET_SECONDS = 120
WORKER_CONCURRENCY = 2
REFERENCE_PER_CONNECTION = 500  # BEACON_NOTIFY_EMAIL_BATCH_SIZE: one connection per batch
POLL_SECONDS = 0.5
TIMEOUT_SECONDS = 600
# No row sent, failed or added for this long: stuck (a retry comes after 60 s, plus a sweep).
STALL_SECONDS = 150

SEED_CODE = """
import json, time
from django.db import connection
from django.utils import timezone
from components.models import Component
from incidents.notify.models import Channel, Subscriber, SubscriberState
n = %d
started = time.monotonic()
api = Component.objects.create(name="API", position=1)
website = Component.objects.create(name="Website", position=2)
ACTIVE, UNCONFIRMED, OFF = (
    SubscriberState.ACTIVE, SubscriberState.UNCONFIRMED, SubscriberState.QUARANTINED
)
# (how many, state, components or None for all): the recipients first, then the others.
plan = [
    (n - n // 10, ACTIVE, None),
    (n // 10, ACTIVE, [api.pk]),
    (n // 10, ACTIVE, [website.pk]),
    (n // 20, UNCONFIRMED, None),
    (n // 50, OFF, None),
    (n // 100, OFF, [api.pk]),
]
expected = sum(
    count for count, state, chosen in plan
    if state == ACTIVE and (chosen is None or api.pk in chosen)
)
now = timezone.now()
Through = Subscriber.components.through
number, chunk = 0, 5000
for count, state, chosen in plan:
    base = number
    for start in range(0, count, chunk):
        subscribers = Subscriber.objects.bulk_create(
            Subscriber(
                channel=Channel.EMAIL,
                email=f"subscriber{base + i}@example.com",
                all_components=chosen is None,
                state=state,
                created_at=now,
                confirmed_at=None if state == UNCONFIRMED else now,
                quarantined_at=now if state == OFF else None,
            )
            for i in range(start, min(start + chunk, count))
        )
        number += len(subscribers)
        if chosen:
            Through.objects.bulk_create(
                Through(subscriber_id=s.pk, component_id=c) for s in subscribers for c in chosen
            )
with connection.cursor() as cursor:  # as autovacuum would have long before an incident
    cursor.execute("VACUUM ANALYZE")
print("BENCHJSON " + json.dumps({
    "subscribers": number, "expected": expected, "seconds": time.monotonic() - started,
}))
"""

# Loads Django, says READY, and posts when told to, so the measured window starts at the post.
POST_CODE = """
import json, sys, time
from components.models import Component, ComponentStatus
from incidents.models import IncidentStatus
from incidents.notify.models import NotificationEvent
from incidents.services import incident_create
api = Component.objects.get(name="API")
incident_create  # imported and ready
print("READY", flush=True)
sys.stdin.readline()
before = time.time()
incident = incident_create(
    name="API unavailable",
    status=IncidentStatus.INVESTIGATING,
    body="Requests to the API are failing. We are investigating.",
    component_statuses={api: ComponentStatus.MAJOR_OUTAGE},
    deliver_notifications=True,
)
committed = time.time()  # incident_create returns after its commit (and the doorbell)
event = NotificationEvent.objects.get(incident=incident)
print("BENCHJSON " + json.dumps({"before": before, "committed": committed, "event": event.pk}))
"""

# One message as Beacon's sender writes it, for the reference to send N times.
SAMPLE_CODE = """
import json
from incidents.notify.models import NotificationEvent, Subscriber
from incidents.notify.links import manage_url, unsubscribe_url
event = NotificationEvent.objects.get(pk=%d)
subscriber = Subscriber.objects.filter(deliveries__event=event).first()
message_id = f"<beacon.event-{event.pk}.{subscriber.public_id}@localhost>"
try:
    from incidents.notify.channels.email import EmailSender
    sender = EmailSender(event)
    message = sender.message_bytes(
        subscriber.email, message_id, manage_url(subscriber), unsubscribe_url(subscriber)
    )
    how = "EmailSender.message_bytes"
except AttributeError:  # another sender: Django's own message
    from django.core.mail import EmailMultiAlternatives
    email = EmailMultiAlternatives(
        event.subject, event.text_body, to=[subscriber.email], headers={"Message-ID": message_id}
    )
    email.attach_alternative(event.html_body, "text/html")
    message = email.message().as_bytes(linesep="\\r\\n")
    how = "EmailMultiAlternatives"
# The reference writes its own To: line per message.
lines = [line for line in message.split(b"\\r\\n") if not line.startswith(b"To: ")]
with open(%r, "wb") as out:
    out.write(b"\\r\\n".join(lines))
print("BENCHJSON " + json.dumps({"bytes": len(message), "how": how}))
"""

# The reference: plain smtplib, one connection per 500 messages, like a batch.
REFERENCE_CODE = """
import json, smtplib, sys, time
host, port, first, count, per_connection, path = sys.argv[1:7]
port, first, count, per_connection = int(port), int(first), int(count), int(per_connection)
with open(path, "rb") as f:
    body = f.read()
sent = 0
started = time.time()
for start in range(first, first + count, per_connection):
    with smtplib.SMTP(host, port) as smtp:
        smtp.ehlo()
        for i in range(start, min(start + per_connection, first + count)):
            to = f"subscriber{i}@example.com"
            smtp.sendmail("status@localhost", [to], b"To: " + to.encode() + b"\\r\\n" + body)
            sent += 1
print("BENCHJSON " + json.dumps({"started": started, "finished": time.time(), "sent": sent}))
"""

# aiosmtpd in its own process: accepts every message, keeps nothing, and prints its count
# in smtp-sink's -c format ("mesg=N") whenever it changed, at most every 0.1 s.
AIOSMTPD_CODE = """
import asyncio, contextlib, signal, sys
from aiosmtpd.smtp import SMTP

class Counter:
    messages = 0
    async def handle_DATA(self, server, session, envelope):
        self.messages += 1
        return "250 OK"

async def main(host, port):
    counter = Counter()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(counter, hostname="bench-sink", data_size_limit=None), host, port
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    shown = -1
    while True:
        if counter.messages != shown:
            shown = counter.messages
            print(f"mesg={shown}", flush=True)
        if stop.is_set():
            break
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)
    server.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""

LEDGER_SQL = """
SELECT e.expanded_at,
       count(d.id) FILTER (WHERE d.state = 'sent'),
       count(d.id) FILTER (WHERE d.state = 'failed'),
       count(d.id)
FROM incidents_notificationevent e LEFT JOIN incidents_delivery d ON d.event_id = e.id
WHERE e.id = %s GROUP BY e.expanded_at
"""

# While it runs: only the rows still queued, an index-only count that shrinks as it goes.
# Counting every row five times a second cost PostgreSQL more than the sends at 100,000.
PROGRESS_SQL = """
SELECT e.expanded_at,
       (SELECT count(*) FROM incidents_delivery d WHERE d.event_id = e.id AND d.state = 'queued')
FROM incidents_notificationevent e WHERE e.id = %s
"""

DETAIL_SQL = """
SELECT min(sent_at), max(sent_at), count(*) FILTER (WHERE attempts > 1),
       count(*) FILTER (WHERE error <> ''), count(DISTINCT subscriber_id),
       count(*) FILTER (WHERE state = 'sent' AND subscriber_id NOT IN (
           SELECT s.id FROM incidents_subscriber s
           WHERE s.state = 'active' AND (s.all_components OR EXISTS (
               SELECT 1 FROM incidents_subscriber_components sc JOIN components_component c
               ON c.id = sc.component_id WHERE sc.subscriber_id = s.id AND c.name = 'API'))))
FROM incidents_delivery WHERE event_id = %s
"""


# --- the SMTP servers ---------------------------------------------------------------------


def smtp_sink_binary() -> Path | None:
    """Postfix's smtp-sink, unpacked from the Debian package (not installed), or None."""
    root = CACHE / "postfix"
    binary = root / "usr" / "sbin" / "smtp-sink"
    if binary.exists():
        return binary
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        log("smtp-sink: no apt-get/dpkg to fetch postfix with")
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        if not list(CACHE.glob("postfix_*.deb")):
            log(f"smtp-sink: apt-get download postfix into {CACHE}")
            subprocess.run(
                ["apt-get", "download", "postfix"],
                cwd=CACHE,
                check=True,
                capture_output=True,
                timeout=300,
            )
        deb = sorted(CACHE.glob("postfix_*.deb"))[-1]
        run_cmd(["dpkg", "-x", str(deb), str(root)])
    except (OSError, subprocess.SubprocessError, RuntimeError) as error:
        log(f"smtp-sink: cannot fetch postfix: {error}")
        return None
    return binary if binary.exists() else None


def smtp_sink_argv(binary: Path, port: int) -> list[str]:
    user = ["-u", "root"] if os.geteuid() == 0 else []  # required when run as root
    return [str(binary), *user, "-c", f"{HOST}:{port}", "1000"]


def start_smtp(procs: Processes, kind: str, sink: Path | None, tmp: Path, label: str):
    port = SMTP_PORTS[kind]
    env = dict(os.environ)
    if kind == "smtp-sink":
        env["LD_LIBRARY_PATH"] = str(CACHE / "postfix" / "usr" / "lib" / "postfix")
        argv = smtp_sink_argv(sink, port)
    else:
        script = tmp / "aiosmtpd_sink.py"
        script.write_text(AIOSMTPD_CODE)
        argv = [str(BIN / "python"), str(script), HOST, str(port)]
    proc = procs.start(f"{kind}-{label}", argv, env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} exited; see {proc.log_path}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return proc
        time.sleep(0.1)
    raise RuntimeError(f"{kind} does not answer on port {port}")


def smtp_count(proc) -> int:
    """The server's own count of messages received, once it stopped changing."""
    last, stable_since = None, time.monotonic()
    while True:
        found = re.findall(rb"mesg=(\d+)", proc.log_path.read_bytes())
        count = int(found[-1]) if found else 0
        if count != last:
            last, stable_since = count, time.monotonic()
        elif time.monotonic() - stable_since >= 0.5:
            return count
        time.sleep(0.1)


# --- the worker ---------------------------------------------------------------------------


def wait_worker(env: dict, proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited; see {proc.log_path}")
        argv = [str(BIN / "celery"), "-A", "statuspage", "inspect", "ping", "--timeout", "1"]
        if "pong" in run_cmd(argv, env=env, timeout=60, check=False):
            return
        time.sleep(0.5)
    raise RuntimeError(f"the worker did not answer a ping in {timeout}s")


class PostgresCpu:
    """User + system CPU of PostgreSQL's processes over a window, sampled as it goes.

    Django closes its connection after each task, so a batch's backend is gone by the end:
    each sample keeps what every process had used when last seen (up to one poll short).
    """

    def __init__(self):
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.sample(started=True)

    def sample(self, started: bool = False) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        for proc_dir in Path("/proc").iterdir():
            if not proc_dir.name.isdigit():
                continue
            try:
                name, fields = (proc_dir / "stat").read_text().rsplit(")", 1)
            except OSError:
                continue
            if name.endswith("(postgres"):
                values = fields.split()
                cpu = (int(values[11]) + int(values[12])) / tick
                pid = int(proc_dir.name)
                self.first.setdefault(pid, cpu if started else 0.0)
                self.last[pid] = cpu

    @property
    def seconds(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle (all cores), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def log_problems(path: Path) -> list[str]:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    return [
        line
        for line in lines
        if re.search(
            r"Traceback|\b(?:ERROR|CRITICAL|WARNING)/|\w(?:Error|Exception)\b|notification batch",
            line,
        )
    ]


# --- one measurement ----------------------------------------------------------------------


def ledger(event_id: int):
    return pg_execute(LEDGER_SQL % int(event_id), dbname=DB)[0]


def progress(event_id: int, expected: int):
    """(expanded_at, sent or failed, failed unknown, rows) cheaply, for the loop below."""
    expanded_at, queued = pg_execute(PROGRESS_SQL % int(event_id), dbname=DB)[0]
    return expanded_at, expected - queued, 0, expected


def deliver(procs, env, kind, sink, size, expected, tmp) -> dict:
    """One incident to every subscriber through the worker and one SMTP server."""
    label = f"{size}-{kind}"
    pg_execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    pg_execute(f"CREATE DATABASE {DB} TEMPLATE {SEED_DB}")
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()  # no task left over from another run
    env = {**env, "EMAIL_URL": f"smtp://{HOST}:{SMTP_PORTS[kind]}"}
    server = start_smtp(procs, kind, sink, tmp, label)
    worker = procs.start(
        f"worker-{label}",
        [
            str(BIN / "celery"),
            "-A",
            "statuspage",
            "worker",
            "-Q",
            "notify",
            "--concurrency",
            str(WORKER_CONCURRENCY),
            "--prefetch-multiplier",
            "1",
            "--loglevel",
            "WARNING",
        ],
        env,
    )
    beat = procs.start(
        f"beat-{label}",
        [
            str(BIN / "celery"),
            "-A",
            "statuspage",
            "beat",
            "--loglevel",
            "WARNING",
            "--schedule",
            str(tmp / f"beat-schedule-{label}"),
        ],
        env,
    )
    wait_worker(env, worker)
    server_before = smtp_count(server)
    log(f"{label}: posting the incident ({expected:,} recipients)")
    poster = subprocess.Popen(
        [str(BIN / "python"), "manage.py", "shell", "-c", POST_CODE],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    while not output or output[-1].strip() != "READY":
        line = poster.stdout.readline()
        if not line:
            raise RuntimeError("posting the incident failed:\n" + "".join(output)[-3000:])
        output.append(line)
    cpu_before = {
        "worker": cpu_seconds(worker.pid),
        "smtp": cpu_seconds(server.pid),
        "machine": machine_busy_seconds(),
    }
    postgres_cpu = PostgresCpu()
    window_start = time.time()
    rest, _ = poster.communicate("go\n", timeout=120)
    output.append(rest)
    posted = json.loads(
        next(
            (x for x in rest.splitlines() if x.startswith("BENCHJSON ")), "BENCHJSON null"
        ).removeprefix("BENCHJSON ")
    )
    if poster.returncode or not posted:
        raise RuntimeError("posting the incident failed:\n" + "".join(output)[-3000:])
    event_id, committed = posted["event"], posted["committed"]
    deadline = time.monotonic() + TIMEOUT_SECONDS
    shown = moved = time.monotonic()
    done, state = False, None
    while time.monotonic() < deadline:
        expanded_at, sent, failed, total = progress(event_id, expected)
        if expanded_at is not None and sent + failed == total:
            done = True
            break
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited; see {worker.log_path}")
        postgres_cpu.sample()
        if (expanded_at, sent, failed, total) != state:
            state, moved = (expanded_at, sent, failed, total), time.monotonic()
        elif time.monotonic() - moved > STALL_SECONDS:
            log(f"{label}: stuck, nothing moved for {STALL_SECONDS}s")
            break
        if time.monotonic() - shown >= 5:
            shown = time.monotonic()
            log(f"{label}: {sent:,} sent, {failed:,} failed of {total:,} rows")
        time.sleep(POLL_SECONDS)
    finished = time.time()
    postgres_cpu.sample()
    cpu = {
        "worker": cpu_seconds(worker.pid) - cpu_before["worker"],
        "smtp": cpu_seconds(server.pid) - cpu_before["smtp"],
        "postgres": postgres_cpu.seconds,
        "machine": machine_busy_seconds() - cpu_before["machine"],
    }
    if not done:
        log(f"{label}: not finished after {finished - committed:.0f}s")
    time.sleep(1)  # a message accepted just before the last row's update would show now
    procs.stop(beat)
    procs.stop(worker)
    beacon_server_count = smtp_count(server) - server_before
    expanded_at, sent, failed, total = ledger(event_id)
    first, last, retried, with_error, subscribers, strangers = pg_execute(
        DETAIL_SQL % int(event_id), dbname=DB
    )[0]
    all_s = last.timestamp() - committed if last else None
    first_s = first.timestamp() - committed if first else None
    problems = log_problems(worker.log_path) + log_problems(beat.log_path)
    beacon = {
        "done": done,
        "rows": total,
        "sent": sent,
        "failed": failed,
        "queued": total - sent - failed,
        "retried": retried,
        "with_error": with_error,
        "distinct_subscribers": subscribers,
        "sent_to_non_recipients": strangers,
        "server_count": beacon_server_count,
        "exactly_once": done
        and sent == expected == total == subscribers == beacon_server_count
        and not strangers,
        "post_s": round(committed - posted["before"], 3),
        # expanded_at is when the expansion began; the commit time is taken after
        # incident_create returned, so this can be a few milliseconds below zero.
        "expansion_began_s": round(expanded_at.timestamp() - committed, 3) if expanded_at else None,
        "first_s": round(first_s, 3) if first_s is not None else None,
        "all_s": round(all_s, 3) if all_s is not None else None,
        "per_s": round(sent / all_s, 1) if all_s else None,
        "sending_per_s": round(sent / (last - first).total_seconds(), 1)
        if first and last and last > first
        else None,
        "worker_cpu_s": round(cpu["worker"], 1),
        "worker_cores": round(cpu["worker"] / (finished - window_start), 2),
        "smtp_cpu_s": round(cpu["smtp"], 1),
        "postgres_cpu_s": round(cpu["postgres"], 1),
        "postgres_cores": round(cpu["postgres"] / (finished - window_start), 2),
        # Everything, this bench's polling and other users of the machine included.
        "machine_busy_cores": round(cpu["machine"] / (finished - window_start), 2),
        "worker_log_problems": len(problems),
        "worker_log_sample": problems[:20],
    }
    log(
        f"{label}: {sent:,}/{expected:,} sent, {failed} failed, server counted "
        f"{beacon_server_count:,}; first {beacon['first_s']} s, all {beacon['all_s']} s "
        f"({beacon['per_s']}/s); CPU-s: worker {beacon['worker_cpu_s']}, PostgreSQL "
        f"{beacon['postgres_cpu_s']}, server {beacon['smtp_cpu_s']}; machine busy "
        f"{beacon['machine_busy_cores']} of {os.cpu_count()} cores"
    )
    if problems:
        log(f"{label}: {len(problems)} problem lines in the worker/beat logs, e.g. {problems[0]}")

    sample = manage_shell(env, SAMPLE_CODE % (event_id, str(tmp / "message.eml")))
    reference = smtplib_reference(server, kind, size, tmp / "message.eml")
    reference["message_bytes"] = sample["bytes"]
    reference["message_from"] = sample["how"]
    procs.stop(server)
    ratio = beacon["per_s"] / reference["per_s"] if beacon["per_s"] and reference["per_s"] else None
    log(
        f"{label}: reference {reference['per_s']}/s ({reference['seconds']} s), server "
        f"counted {reference['server_count']:,}; Beacon/reference {ratio and round(ratio, 2)}"
    )
    return {
        "smtp": kind,
        "size": size,
        "expected": expected,
        "beacon": beacon,
        "reference": reference,
        "ratio": round(ratio, 3) if ratio else None,
    }


def smtplib_reference(server, kind: str, size: int, message: Path) -> dict:
    """N messages of the same size from two plain smtplib processes, half each."""
    before = smtp_count(server)
    half = size // WORKER_CONCURRENCY
    shares = [(i * half, half) for i in range(WORKER_CONCURRENCY - 1)]
    shares.append(((WORKER_CONCURRENCY - 1) * half, size - (WORKER_CONCURRENCY - 1) * half))
    clients = [
        subprocess.Popen(
            [
                str(BIN / "python"),
                "-c",
                REFERENCE_CODE,
                HOST,
                str(SMTP_PORTS[kind]),
                str(first),
                str(count),
                str(REFERENCE_PER_CONNECTION),
                str(message),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for first, count in shares
    ]
    results = []
    for client in clients:
        output, _ = client.communicate(timeout=TIMEOUT_SECONDS)
        line = [x for x in output.splitlines() if x.startswith("BENCHJSON ")]
        if client.returncode or not line:
            raise RuntimeError(f"the smtplib reference failed:\n{output[-3000:]}")
        results.append(json.loads(line[0].removeprefix("BENCHJSON ")))
    seconds = max(r["finished"] for r in results) - min(r["started"] for r in results)
    sent = sum(r["sent"] for r in results)
    return {
        "clients": len(clients),
        "per_connection": REFERENCE_PER_CONNECTION,
        "sent": sent,
        "server_count": smtp_count(server) - before,
        "seconds": round(seconds, 3),
        "per_s": round(sent / seconds, 1),
    }


# --- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="subscribers to reach, e.g. 1000")
    parser.add_argument(
        "--smtp",
        default="auto",
        choices=["auto", "smtp-sink", "aiosmtpd", "both"],
        help="the SMTP server(s); auto: smtp-sink when it can be fetched, else aiosmtpd",
    )
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]

    sink = smtp_sink_binary() if args.smtp != "aiosmtpd" else None
    if args.smtp == "smtp-sink" and sink is None:
        raise SystemExit("smtp-sink is not available (see above)")
    kinds = {
        "auto": ["smtp-sink" if sink else "aiosmtpd"],
        "smtp-sink": ["smtp-sink"],
        "aiosmtpd": ["aiosmtpd"],
        "both": ["smtp-sink", "aiosmtpd"] if sink else ["aiosmtpd"],
    }[args.smtp]
    if args.smtp == "both" and not sink:
        log("smtp-sink is not available: aiosmtpd only")

    tmp = Path(tempfile.mkdtemp(prefix="beacon-bench-notify-"))
    procs = Processes(tmp)
    env = beacon_env(SEED_DB, tmp / "var")
    env.update(
        SNAPSHOT_RENDER_ON_WRITE="false",
        CACHE_KEY_PREFIX="beacon-bench-notify",
        REDIS_URL=env["REDIS_URL"].rsplit("/", 1)[0] + f"/{REDIS_DB}",
        LOG_LEVEL="WARNING",
    )
    run_env = {**env, "DATABASE_URL": env["DATABASE_URL"].rsplit("/", 1)[0] + f"/{DB}"}
    ok = False
    try:
        started = datetime.now(UTC)
        result = {
            "started": started.isoformat(timespec="seconds"),
            "machine": machine(),
            "load_start": loadavg(),
            "sizes": sizes,
            "smtp": kinds,
            "worker": f"celery -A statuspage worker -Q notify --concurrency {WORKER_CONCURRENCY} "
            "--prefetch-multiplier 1",
            "runs": [],
        }
        for size in sizes:
            pg_execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
            pg_execute(f"DROP DATABASE IF EXISTS {SEED_DB} WITH (FORCE)")
            pg_execute(f"CREATE DATABASE {SEED_DB}")
            log(f"{size:,}: migrating")
            run_cmd([str(BIN / "python"), "manage.py", "migrate", "-v0"], env=env)
            log(f"{size:,}: seeding")
            seeded = manage_shell(env, SEED_CODE % size, timeout=1800)
            log(
                f"{size:,}: {seeded['subscribers']:,} subscribers, {seeded['expected']:,} "
                f"to hear of API, in {seeded['seconds']:.1f}s"
            )
            for kind in kinds:
                measured = deliver(procs, run_env, kind, sink, size, seeded["expected"], tmp)
                measured["subscribers"] = seeded["subscribers"]
                result["runs"].append(measured)
        result["load_end"] = loadavg()
        RESULTS_DIR.mkdir(exist_ok=True)
        out = RESULTS_DIR / f"notify-{started:%Y%m%dT%H%M%SZ}.json"
        out.write_text(json.dumps(result, indent=2))
        log(f"results: {out.relative_to(ROOT)}")
        if not args.no_doc:
            write_doc(result, out, args)
            log(f"updated {DOC.relative_to(ROOT)}")
        ok = all(run["beacon"]["exactly_once"] for run in result["runs"])
        if not ok:
            log("not every message was delivered exactly once: see the results")
    finally:
        procs.stop_all()
        if ok:
            pg_execute(f"DROP DATABASE IF EXISTS {SEED_DB} WITH (FORCE)")
        if ok and not args.keep_logs:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"logs kept in {tmp}")
    if not ok:
        raise SystemExit(1)


def write_doc(result: dict, out: Path, args) -> None:
    command = f"bench/notify.py --sizes {','.join(str(s) for s in result['sizes'])}"
    command += f" --smtp {args.smtp}"
    rows = []
    for run in result["runs"]:
        b, r = run["beacon"], run["reference"]
        rows.append(
            f"| {run['expected']:,} | {run['smtp']} | {_num(b['first_s'], ' s')} "
            f"| **{_num(b['all_s'], ' s')}** | {_num(b['per_s'])} | {_num(r['per_s'])} "
            f"| {_num(run['ratio'] and round(run['ratio'], 2))} "
            f"| {b['worker_cores']} / {b['postgres_cores']} | {b['failed']} "
            f"| {b['sent']:,} / {b['server_count']:,} "
            f"| {'yes' if b['exactly_once'] else '**no**'} |"
        )
    at_target = [
        run
        for run in result["runs"]
        if run["expected"] >= TARGET_SIZE and run["smtp"] == result["smtp"][0]
    ]
    if at_target:
        meets = all(
            run["beacon"]["exactly_once"] and (run["beacon"]["all_s"] or 1e9) < TARGET_SECONDS
            for run in at_target
        )
        verdict = "met" if meets else "**not met**"
    else:
        verdict = f"not measured in this run (`--sizes {TARGET_SIZE}`)"
    size = result["runs"][0]["reference"]["message_bytes"] if result["runs"] else 0
    rows_text = "\n".join(rows)
    text = f"""{DOC_START}
Last run: {result["started"]}, `{command}` (raw: `{out.relative_to(ROOT)}`).
Load average at the start {result["load_start"]}, at the end {result["load_end"]}.

Worker: `{result["worker"]}` (prefork) and beat. Messages of {size:,} bytes (text and HTML).
Times run from the incident's commit to the server's acceptance (the ledger's `sent_at`).
Reference: {WORKER_CONCURRENCY} plain smtplib processes sending as many copies of the same
message to the same server, {REFERENCE_PER_CONNECTION} per connection.

| Recipients | SMTP server | First message | All messages | Beacon msg/s | Reference msg/s \
| Beacon / reference | Worker / PostgreSQL cores | Failed | Sent / server count | Exactly once |
| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
{rows_text}

Target (100,000 subscribers in under {TARGET_SECONDS} s through {result["smtp"][0]}, each
message once): {verdict}.
{DOC_END}"""
    doc = DOC.read_text()
    if DOC_START in doc:
        doc = re.sub(
            re.escape(DOC_START) + ".*?" + re.escape(DOC_END), lambda _: text, doc, flags=re.S
        )
    else:
        doc = doc.rstrip() + "\n\n## Subscriber notifications\n\n" + text + "\n"
    DOC.write_text(doc)


def _num(value, unit: str = "") -> str:
    return "–" if value is None else f"{value:,}{unit}"


if __name__ == "__main__":
    os.chdir(ROOT)
    main()

"""Truth before the crowd (issue 17): how soon the page, subscribers and staff hear.

    .venv/bin/python bench/truth.py [--interval 10] [--failures 3] [--duration 10]
                                    [--rounds 3] [--connections 64] [--no-doc]

Everything runs on servers of its own: a private PostgreSQL cluster (initdb into a temporary
directory, on a free port, as tests/postgres_pair.py makes them), so that stopping it harms
nobody; its own redis-server on a free port; an SMTP server (aiosmtpd, in this process) that
notes when each message arrives, its subject and its recipients; and an HTTP target this
script turns from 200 to 500. Beacon runs as `make run` starts it: gunicorn with its config
(`--workers 2`), one Celery worker (`-Q default,checks,notify,snapshots --concurrency 2`) and
beat. The page has two components: API, whose HTTP check (every --interval seconds, down
after --failures failures) publishes an incident at once (auto_incident=publish) and which
one confirmed email subscriber follows, and Website; one superuser with an email address is
the staff; the page promises an update every 5 minutes (the minimum).

1. **A check fails.** The target answers 500 from t0; the time until
   `/api/v2/components.json` and `/` show API's new status, and until the subscriber's first
   email is in the SMTP server. Targets: public within interval × failures + 5 s; the
   subscriber within 30 s of the public change.
2. **An incident left silent.** The automatic incident's rows are back-dated so that its last
   update is exactly one interval (5 minutes) old; the time until staff's reminder email.
   Bound: the beat task runs every minute, so within 60 s + 5 s.
3. **A surge of reports.** --surge-rate reports a second for --surge-seconds, each from a new
   client address (X-Forwarded-For, TRUSTED_PROXY_HOPS=1) and user agent, naming Website; the
   time from the first report to a staff email whose subject starts "Visitors report
   problems: ". Target: 2 minutes. Not measured when beat has no surge task.
4. **Reports with PostgreSQL stopped.** Beat and the worker stopped, the cluster stopped
   (`pg_ctl stop`); `wrk -t2 -c<connections>` for --duration seconds on `POST /reports/`
   (bench/wrk/reports.lua: a new address per request) and on `/` (the snapshot page, the
   reference), --rounds rounds interleaved, medians. Target: 2,000 accepted (202) a second.

Results: a table with each target met or not, bench/results/truth-<time>.json, and the
"Truth before the crowd" section of docs/performance.md (between the bench:truth markers).
About four minutes.
"""

import argparse
import contextlib
import email
import json
import os
import pwd
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from recovery import wait_for
from run import (
    BIN,
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
    manage_shell,
    run_cmd,
    wait_http,
    write_doc_section,
    wrk,
)

sys.path.insert(0, str(ROOT))
from tests.postgres_pair import BIN as PG_BIN  # noqa: E402 - the repository's root, just added
from tests.postgres_pair import Cluster  # noqa: E402

DB = "beacon_truth"
DOC_START = "<!-- bench:truth:start -->"
DOC_END = "<!-- bench:truth:end -->"
DOC_HEADING = "## Truth before the crowd"
SUBSCRIBER = "reader@example.com"
STAFF = "oncall@example.com"
SURGE_SUBJECT = "Visitors report problems: "
REMINDER_SUBJECT = "No update for "
UPDATE_INTERVAL_MINUTES = 5  # the smallest PageSettings.update_interval_minutes allows
REMINDER_BEAT_SECONDS = 60  # remind-silent-incidents in statuspage/celery.py
TARGET_SUBSCRIBERS_S = 30
TARGET_SURGE_S = 120
TARGET_REPORTS_PER_S = 2000
SLACK_S = 5
ADDRESSES_PER_RUN = 200_000  # per wrk thread: more than one can send in a run

SEED_CODE = """
import json
from django.contrib.auth.models import User
from django.utils import timezone
from components.models import Component, HealthCheck
from incidents.notify.models import Subscriber, SubscriberState
from statuspage.models import PageSettings
page = PageSettings.load()
page.name, page.url, page.update_interval_minutes = "Bench", %(url)r, %(minutes)d
page.save()
api = Component.objects.create(name="API", position=1, auto_incident="publish")
website = Component.objects.create(name="Website", position=2)
check = HealthCheck.objects.create(
    component=api, name="API health", kind="http", url=%(target)r, interval=%(interval)d,
    timeout=2, failures_before_down=%(failures)d, next_run_at=timezone.now(),
)
reader = Subscriber.objects.create(
    email=%(subscriber)r, state=SubscriberState.ACTIVE, confirmed_at=timezone.now(),
    all_components=False,
)
reader.components.add(api)
User.objects.create_superuser("oncall", %(staff)r, "bench-only-password-0123456789")
print("BENCHJSON " + json.dumps({"api": api.public_id, "website": website.public_id,
                                 "check": check.pk}))
"""

SURGE_TASK_CODE = """
import json
from statuspage.celery import app
tasks = [entry["task"] for entry in app.conf.beat_schedule.values()]
print("BENCHJSON " + json.dumps({"surge": [t for t in tasks if "surge" in t]}))
"""


# --- pure helpers (tests/test_bench_truth.py) ----------------------------------------------


def page_status(html: str, name: str) -> str | None:
    """A component's status as the public page's component row shows it ("Major outage")."""
    head = re.search(
        r'<span class="component-name">' + re.escape(escape(name)) + r"</span>"
        r'.*?<span class="status-text[^"]*">.*?</svg>([^<]*)</span>',
        html,
        flags=re.S,
    )
    return head.group(1).strip() if head else None


def api_status(body: bytes, name: str) -> str | None:
    """A component's status in /api/v2/components.json ("major_outage")."""
    for component in json.loads(body)["components"]:
        if component["name"] == name:
            return component["status"]
    return None


def bare_subject(subject: str) -> str:
    """A staff email's subject without the page's name in brackets before it."""
    return re.sub(r"^\[[^\]]*\]\s*", "", subject)


def seconds_between(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 2)


@dataclass
class Target:
    what: str
    measured: float | None  # None: not measured
    limit: float
    at_least: bool = False  # the measured number must reach the limit (a rate), not stay under
    unit: str = "s"
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.measured is None:
            return "not measured" + (f": {self.note}" if self.note else "")
        met = self.measured >= self.limit if self.at_least else self.measured <= self.limit
        return "pass" if met else "FAIL"


def targets_table(targets: list[Target]) -> list[str]:
    """The table of targets, as markdown rows (printed and written to the docs alike)."""
    rows = ["| What | Measured | Target | Verdict |", "| --- | ---: | ---: | --- |"]
    for t in targets:
        measured = "–" if t.measured is None else f"{t.measured:,.1f} {t.unit}"
        limit = f"{'≥' if t.at_least else '≤'} {t.limit:,.0f} {t.unit}"
        rows.append(f"| {t.what} | {measured} | {limit} | {t.verdict} |")
    return rows


# --- the servers this bench controls -------------------------------------------------------


class Target500:
    """An HTTP target a health check polls: 200 until `fail()`, then 500."""

    def __init__(self) -> None:
        self.status = 200
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self.send_response(target.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok" if target.status == 200 else b"no")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}/health"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fail(self) -> None:
        self.status = 500

    def close(self) -> None:
        self.server.shutdown()


@dataclass(frozen=True)
class Mail:
    at: float
    subject: str
    recipients: tuple[str, ...]


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps when each message arrived, its subject and recipients."""

    mails: list[Mail] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.note(envelope.content, envelope.rcpt_tos)
        return "250 OK"

    def note(self, content: bytes, recipients: list[str]) -> None:
        message = email.message_from_bytes(content)
        subject = str(make_header(decode_header(message.get("Subject", ""))))
        self.mails.append(Mail(time.time(), subject, tuple(recipients)))

    def first(self, *, after: float, to: str | None = None, subject: str = "") -> Mail | None:
        for mail in list(self.mails):
            if mail.at < after or (to is not None and to not in mail.recipients):
                continue
            if bare_subject(mail.subject).startswith(subject):
                return mail
        return None


def private_postgres(port: int) -> tuple[Cluster, Path]:
    """A PostgreSQL cluster of this run's own, started; its directory belongs to postgres."""
    if not (PG_BIN / "pg_ctl").exists():
        raise SystemExit(f"PostgreSQL's server binaries are not in {PG_BIN} (set PG_BIN)")
    root = Path(tempfile.mkdtemp(prefix="beacon-bench-truth-pg-"))
    postgres = pwd.getpwnam("postgres")
    os.chown(root, postgres.pw_uid, postgres.pw_gid)
    cluster = Cluster(root / "data", port)
    cluster.run(str(PG_BIN / "initdb"), "-D", str(cluster.data), "-U", "postgres", "-A", "trust")
    cluster.start()
    return cluster, root


def start_redis(procs: Processes, env: dict, port: int) -> None:
    argv = ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    procs.start("redis", argv, env)
    ping = ["redis-cli", "-h", HOST, "-p", str(port), "ping"]
    if not wait_for(lambda: "PONG" in run_cmd(ping, check=False), 20):
        raise RuntimeError("redis-server did not start")


# --- the measurements ----------------------------------------------------------------------


def check_failure(
    port: int, cluster: Cluster, target: Target500, inbox: Inbox, timeout: float
) -> dict:
    def api_now() -> str | None:
        return api_status(http_get(port, "/api/v2/components.json")[2], "API")

    def check_up() -> bool:
        with cluster.connect(DB) as connection:
            verdicts = connection.execute("SELECT verdict FROM components_healthcheck").fetchall()
        return verdicts == [("up",)]

    if not (wait_for(check_up, 60, 0.5) and wait_for(lambda: api_now() == "operational", 30)):
        raise RuntimeError("the check never found API up, or the page never showed it")
    target.fail()
    started = time.time()
    seen: dict[str, float] = {}
    while time.time() - started < timeout and len(seen) < 3:
        if "api" not in seen and api_now() == "major_outage":
            seen["api"] = time.time()
        if "page" not in seen:
            html = http_get(port, "/")[2].decode()
            if page_status(html, "API") == "Major outage":
                seen["page"] = time.time()
        mail = inbox.first(after=started, to=SUBSCRIBER)
        if mail is not None:
            seen["mail"] = mail.at
        time.sleep(0.1)
    public = max(seen["api"], seen["page"]) if {"api", "page"} <= seen.keys() else None
    return {
        "to_api_s": seconds_between(started, seen.get("api")),
        "to_page_s": seconds_between(started, seen.get("page")),
        "to_public_s": seconds_between(started, public),
        "to_subscriber_s": seconds_between(started, seen.get("mail")),
        "public_to_subscriber_s": seconds_between(public, seen.get("mail")),
    }


def silent_incident(cluster: Cluster, inbox: Inbox, timeout: float) -> dict:
    """Back-date the open automatic incident so that it is due a reminder from now on."""
    interval = f"{UPDATE_INTERVAL_MINUTES * 60} seconds"
    with cluster.connect(DB) as connection:
        [(incident,)] = connection.execute(
            "SELECT id FROM incidents_incident WHERE status = 'investigating'"
        ).fetchall()
        with connection.transaction():
            connection.execute(
                f"UPDATE incidents_incidentupdate SET created_at = now() - interval '{interval}'"
                " WHERE incident_id = %s",
                [incident],
            )
            connection.execute(
                f"UPDATE incidents_incident SET created_at = now() - interval '{interval}'"
                " WHERE id = %s",
                [incident],
            )
    due = time.time()
    wait_for(lambda: inbox.first(after=due, to=STAFF, subject=REMINDER_SUBJECT), timeout, 0.2)
    mail = inbox.first(after=due, to=STAFF, subject=REMINDER_SUBJECT)
    return {
        "to_reminder_s": seconds_between(due, mail.at if mail else None),
        "subject": mail.subject if mail else None,
    }


def report_surge(
    port: int, component: str, inbox: Inbox, *, rate: float, seconds: float, timeout: float
) -> dict:
    """Reports at `rate` a second, each from a new address, and the staff alert's delay."""
    import http.client

    codes: dict[int, int] = {}
    body = f"components={component}&symptom=errors"
    started = time.time()

    def send() -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=10)
        for n in range(int(rate * seconds)):
            time.sleep(max(0.0, started + n / rate - time.time()))
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "HX-Request": "true",  # as the page's form sends it with JavaScript
                "X-Forwarded-For": f"10.200.{n // 256 % 256}.{n % 256}",
                "User-Agent": f"beacon-bench-surge/{n}",
            }
            connection.request("POST", "/reports/", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            codes[response.status] = codes.get(response.status, 0) + 1

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    wait_for(lambda: inbox.first(after=started, to=STAFF, subject=SURGE_SUBJECT), timeout, 0.2)
    sender.join()
    mail = inbox.first(after=started, to=STAFF, subject=SURGE_SUBJECT)
    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "codes": codes,
        "to_alert_s": seconds_between(started, mail.at if mail else None),
        "subject": mail.subject if mail else None,
    }


def redis_commands(port: int) -> int:
    """How many commands the redis-server has processed since it started."""
    stats = run_cmd(["redis-cli", "-h", HOST, "-p", str(port), "info", "stats"])
    return int(re.search(r"total_commands_processed:(\d+)", stats).group(1))  # type: ignore[union-attr]


def reports_throughput(
    port: int, redis_port: int, component: str, *, connections: int, duration: int, rounds: int
) -> dict:
    """POST /reports/ beside the snapshot page `/`, interleaved; medians of the rounds, and
    the Redis commands each request ran."""
    os.environ["BENCH_REPORT_BODY"] = f"components={component}&symptom=errors"
    runs: dict[str, list[dict]] = {"reports": [], "page": []}
    for number in range(1, rounds + 1):
        for name, path, script in (
            ("reports", "/reports/", "reports.lua"),
            ("page", "/", "fixed.lua"),
        ):
            # New addresses for every run: one seen before would be folded, not counted.
            os.environ["BENCH_REPORT_OFFSET"] = str(ADDRESSES_PER_RUN * number)
            before = redis_commands(redis_port)
            result = wrk(f"http://{HOST}:{port}{path}", connections, duration, script=script)
            result["redis_per_request"] = (redis_commands(redis_port) - before) / result["requests"]
            ok = 202 if name == "reports" else 200
            result["ok_per_s"] = result["rps"] * result["codes"].get(ok, 0) / result["requests"]
            result["not_ok"] = result["requests"] - result["codes"].get(ok, 0)
            runs[name].append(result)
            log(
                f"round {number} {name}: {result['ok_per_s']:,.0f}/s ok, codes {result['codes']},"
                f" p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms"
            )
    summary = {
        name: {
            "ok_per_s": statistics.median(r["ok_per_s"] for r in results),
            "ok_per_s_all": [round(r["ok_per_s"]) for r in results],
            "p50_ms": statistics.median(r["p50_ms"] for r in results),
            "p99_ms": statistics.median(r["p99_ms"] for r in results),
            "redis_per_request": statistics.median(r["redis_per_request"] for r in results),
            "not_ok": sum(r["not_ok"] for r in results),
            "socket_errors": sum(r["socket_errors"] for r in results),
            "codes": _sum_codes(results),
            "command": results[0]["command"],
        }
        for name, results in runs.items()
    }
    summary["ratio"] = summary["reports"]["ok_per_s"] / summary["page"]["ok_per_s"]
    return {"runs": runs, "summary": summary}


def _sum_codes(results: list[dict]) -> dict[int, int]:
    total: dict[int, int] = {}
    for result in results:
        for code, count in result["codes"].items():
            total[code] = total.get(code, 0) + count
    return total


# --- the run -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--interval", type=int, default=10, help="the check's interval (s)")
    parser.add_argument("--failures", type=int, default=3, help="failures before down")
    parser.add_argument("--surge-rate", type=float, default=10, help="reports a second")
    parser.add_argument("--surge-seconds", type=float, default=60)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="beacon-bench-truth-"))
    procs = Processes(tmp)
    target, inbox = Target500(), Inbox()
    from aiosmtpd.controller import Controller

    smtp_port, redis_port, web_port = free_port(), free_port(), free_port()
    smtp = Controller(inbox, hostname=HOST, port=smtp_port)
    smtp.start()
    cluster, pg_root = private_postgres(free_port())
    env = beacon_env(DB, tmp / "var")
    env.update(
        DATABASE_URL=cluster.url(DB),
        REDIS_URL=f"redis://{HOST}:{redis_port}/0",
        CACHE_KEY_PREFIX="beacon-bench-truth",
        EMAIL_URL=f"smtp://{HOST}:{smtp_port}",
        TRUSTED_PROXY_HOPS="1",
        CHECKS_ALLOW_PRIVATE="true",
        STATIC_MANIFEST="false",
        LOG_LEVEL="WARNING",
    )
    base_url = f"http://{HOST}:{web_port}"
    ok = False
    try:
        started, load_start = datetime.now(UTC), loadavg()
        start_redis(procs, env, redis_port)
        with cluster.connect() as connection:
            connection.execute(f"CREATE DATABASE {DB}")
        log("migrating")
        run_cmd([str(BIN / "python"), "manage.py", "migrate", "-v0"], env=env)
        seeded = manage_shell(
            env,
            SEED_CODE
            % {
                "url": base_url,
                "minutes": UPDATE_INTERVAL_MINUTES,
                "target": target.url,
                "interval": args.interval,
                "failures": args.failures,
                "subscriber": SUBSCRIBER,
                "staff": STAFF,
            },
        )
        surge_tasks = manage_shell(env, SURGE_TASK_CODE)["surge"]
        web_argv = [
            str(BIN / "gunicorn"),
            *("-c", "python:statuspage.gunicorn_conf", "statuspage.wsgi"),
            *("--bind", f"{HOST}:{web_port}", "--workers", "2", "--no-control-socket"),
        ]
        web = procs.start("gunicorn", web_argv, env)
        celery = [str(BIN / "celery"), "-A", "statuspage"]
        worker = procs.start(
            "worker",
            [*celery, "worker", "-Q", "default,checks,notify,snapshots", "--concurrency", "2"],
            env,
        )
        beat = procs.start("beat", [*celery, "beat", "-s", str(tmp / "celerybeat-schedule")], env)
        wait_http(web_port, "/", proc=web)
        log("Beacon is up; the check's target answers 200")

        failure = check_failure(
            web_port, cluster, target, inbox, timeout=args.interval * args.failures + 120
        )
        log(f"check failure: {failure}")
        silence = silent_incident(cluster, inbox, timeout=REMINDER_BEAT_SECONDS + 60)
        log(f"silent incident: {silence}")
        surge = report_surge(
            web_port,
            seeded["website"],
            inbox,
            rate=args.surge_rate,
            seconds=args.surge_seconds,
            timeout=TARGET_SURGE_S + 60 if surge_tasks else args.surge_seconds,
        )
        surge["beat_tasks"] = surge_tasks
        log(f"surge: {surge}")

        http_get(web_port, "/api/v2/summary.json")  # the reports' view of the page, built
        procs.stop(beat)
        procs.stop(worker)
        cluster.stop()
        log("PostgreSQL stopped (and beat and the worker); reports under wrk")
        throughput = reports_throughput(
            web_port,
            redis_port,
            seeded["website"],
            connections=args.connections,
            duration=args.duration,
            rounds=args.rounds,
        )
        cluster.start()

        result = {
            "started": started.isoformat(timespec="seconds"),
            "argv": ["bench/truth.py", *sys.argv[1:]],
            "machine": machine(),
            "load_start": load_start,
            "load_end": loadavg(),
            "settings": vars(args),
            "check_failure": failure,
            "silent_incident": silence,
            "surge": surge,
            "reports": throughput,
        }
        targets = judge(result)
        result["targets"] = [{**vars(t), "verdict": t.verdict} for t in targets]
        RESULTS_DIR.mkdir(exist_ok=True)
        out = RESULTS_DIR / f"truth-{started:%Y%m%dT%H%M%SZ}.json"
        out.write_text(json.dumps(result, indent=2, default=str))
        print("\n" + "\n".join(targets_table(targets)) + "\n")
        log(f"results: {out.relative_to(ROOT)}")
        if not args.no_doc:
            write_doc_section(
                DOC_START,
                DOC_END,
                DOC_HEADING,
                render(result, targets, out),
                after="## Scaling out",
            )
            log("updated docs/performance.md")
        ok = all(t.verdict != "FAIL" for t in targets)
    finally:
        procs.stop_all()
        smtp.stop()
        target.close()
        with contextlib.suppress(Exception):
            cluster.stop("immediate")
        shutil.rmtree(pg_root, ignore_errors=True)
        if ok and not args.keep_logs:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"logs kept in {tmp}")
    if not ok:
        raise SystemExit(1)


def judge(result: dict) -> list[Target]:
    s = result["settings"]
    failure, reports = result["check_failure"], result["reports"]["summary"]
    surge = result["surge"]
    return [
        Target(
            f"Check fails → API's status in the API v2 and on `/` (interval {s['interval']} s"
            f" × {s['failures']} failures + {SLACK_S} s)",
            failure["to_public_s"],
            s["interval"] * s["failures"] + SLACK_S,
        ),
        Target(
            "Public change → the subscriber's first email in the SMTP server",
            failure["public_to_subscriber_s"],
            TARGET_SUBSCRIBERS_S,
        ),
        Target(
            f"Incident silent past the {UPDATE_INTERVAL_MINUTES}-minute interval → staff's"
            f" reminder (beat every {REMINDER_BEAT_SECONDS} s + {SLACK_S} s)",
            result["silent_incident"]["to_reminder_s"],
            REMINDER_BEAT_SECONDS + SLACK_S,
        ),
        Target(
            "First report of a surge → staff's “Visitors report problems: …” email",
            surge["to_alert_s"],
            TARGET_SURGE_S,
            note="" if surge["beat_tasks"] else "needs surge detection",
        ),
        Target(
            "Reports accepted (202) a second, PostgreSQL stopped",
            reports["reports"]["ok_per_s"],
            TARGET_REPORTS_PER_S,
            at_least=True,
            unit="/s",
        ),
    ]


def render(result: dict, targets: list[Target], out: Path) -> str:
    m, s = result["machine"], result["settings"]
    failure, surge = result["check_failure"], result["surge"]
    reports = result["reports"]["summary"]
    r, p = reports["reports"], reports["page"]
    surge_codes = _codes(surge["codes"])
    report_codes, page_codes = (_codes(x["codes"], x["socket_errors"]) for x in (r, p))
    if surge["beat_tasks"]:
        surge_line = (
            f"the staff email came {_s(surge['to_alert_s'])} after the first report"
            f" (“{surge['subject']}”)."
        )
    else:
        surge_line = (
            "no beat task detects a surge on this code yet, so the alert is **not measured**"
            " (the reports were taken all the same)."
        )
    return "\n".join(
        [
            "How soon the page, subscribers and staff hear of trouble, through the real worker"
            " and beat (`make bench-truth`, bench/truth.py), and how fast visitors' reports"
            " are taken with PostgreSQL down.",
            "",
            f"Last run: {result['started']}, commit {m['git']}"
            f"{' with uncommitted changes' if m['git_dirty'] else ''}: "
            f"`{' '.join(result['argv'])}` (raw: `{out.relative_to(ROOT)}`, not committed)."
            f" {m['nproc']} cores shared by everything (wrk, gunicorn, the worker, beat,"
            f" PostgreSQL, Redis); load average {result['load_start']} at the start,"
            f" {result['load_end']} at the end.",
            "",
            *targets_table(targets),
            "",
            "**Method.** A private PostgreSQL cluster (initdb in a temporary directory, a free"
            " port) and redis-server; Beacon as `make run` starts it: gunicorn with its config"
            " (`--workers 2`), one worker (`-Q default,checks,notify,snapshots --concurrency"
            " 2`) and beat; an aiosmtpd server noting when each message arrives. API has one"
            f" HTTP check every {s['interval']} s, down after {s['failures']} failures, and"
            " publishes its incident at once (`auto_incident=publish`); one confirmed email"
            " subscriber follows API; the page promises an update every"
            f" {UPDATE_INTERVAL_MINUTES} minutes.",
            "",
            f"- *Check fails*: the target turned to 500; `/api/v2/components.json` showed it"
            f" after {_s(failure['to_api_s'])}, `/` after {_s(failure['to_page_s'])}; the"
            f" subscriber's email was in the SMTP server {_s(failure['to_subscriber_s'])} after"
            f" the failure, {_s(failure['public_to_subscriber_s'])} after both showed it.",
            "- *Silent incident*: its rows back-dated so that the last update was"
            f" {UPDATE_INTERVAL_MINUTES} minutes old; the reminder (“"
            f"{result['silent_incident']['subject']}”) came"
            f" {_s(result['silent_incident']['to_reminder_s'])} later (beat runs the task every"
            f" {REMINDER_BEAT_SECONDS} s).",
            f"- *Surge*: {surge['rate_per_s']:g} reports a second for {surge['seconds']:g} s,"
            f" each from a new address (X-Forwarded-For, `TRUSTED_PROXY_HOPS=1`) and user agent,"
            f" naming Website ({surge_codes}); {surge_line}",
            "- *Reports with PostgreSQL stopped* (`pg_ctl stop`; beat and the worker stopped"
            f" too): `{_command(r['command'])}` with bench/wrk/reports.lua (a new address and"
            " user agent per request, and `HX-Request` as the page's form sends it with"
            f" JavaScript) beside `{_command(p['command'])}` with"
            " bench/wrk/fixed.lua (the snapshot page, the reference), interleaved,"
            f" {s['rounds']} rounds; medians.",
            "",
            "| Request | Answered as wanted per second | Rounds | p50 | p99 | Redis commands per"
            " request | Status codes (all rounds) |",
            "| --- | ---: | --- | ---: | ---: | ---: | --- |",
            f"| `POST /reports/` (202) | **{r['ok_per_s']:,.0f}** | {r['ok_per_s_all']}"
            f" | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | {r['redis_per_request']:.1f}"
            f" | {report_codes} |",
            f"| `GET /` (200) | {p['ok_per_s']:,.0f} | {p['ok_per_s_all']}"
            f" | {p['p50_ms']:.1f} ms | {p['p99_ms']:.1f} ms | {p['redis_per_request']:.1f}"
            f" | {page_codes} |",
            "",
            f"Reports are taken at {reports['ratio']:.2f} times the snapshot page's rate on the"
            " same server. The page is answered from its snapshot by the second middleware;"
            " a report by the third (`statuspage.middleware.visitor_reports`), past sessions,"
            " CSRF, authentication, OTP, messages, the audit and axes. It makes one round trip"
            " to Redis: a Lua script that counts the address against the limit, sets the"
            " visitor's mark and adds to the count (the commands above are the script's call"
            " and the commands it runs), and its htmx answer is rendered once per summary"
            " version. The rest is Django's request and response and gunicorn's sync worker."
            " Before these (2026-12-05, same bench): 1,085 a second, 0.23 of the page, five"
            " round trips and the whole middleware stack. Quote the ratio and the medians:"
            " the two cores are shared with wrk.",
        ]
    )


def _codes(codes: dict[int, int], socket_errors: int = 0) -> str:
    text = ", ".join(f"{n:,} × {c}" for c, n in sorted(codes.items()))
    return text + (f", {socket_errors:,} socket errors" if socket_errors else "")


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} s"


def _command(command: str) -> str:
    return re.sub(r"-s \S+ ", "", re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", command))


if __name__ == "__main__":
    os.chdir(ROOT)
    main()

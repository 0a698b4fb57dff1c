"""Notification recovery: how long subscribers wait when a worker or Redis is killed mid-send.

    .venv/bin/python bench/recovery.py [--subscribers 1000] [--runs 3] [--scenarios ...]

Starts its own Redis (port 6390, so the shared one on 6379 is never touched), an aiosmtpd
server in its own process that takes 10 ms per message and logs each recipient, beat (the
sweeper every NOTIFY_SWEEP_SECONDS, 10) and two real Celery workers (`--pool solo`,
batches of 250). Per run it posts an incident that N email subscribers must hear of, and
once 30 % of the messages were accepted:

- `baseline`: nothing happens (how long the work itself takes);
- `worker-kill`: one worker's process is killed with SIGKILL in the middle of its batch,
  and started again at once (as systemd or Kubernetes would);
- `redis-kill`: the Redis server is killed with SIGKILL (queued doorbells are lost: no
  persistence) and started again a second later.

It measures, from the kill, the time until every subscriber's message was accepted by the
server (and the ledger holds no queued row), and counts the messages the server accepted
twice. Medians over the runs go to the "Recovery" section of docs/performance.md (between
the bench:recovery markers); raw results to bench/results/recovery-<time>.json. Each run
is cut off after 150 s; a whole default invocation takes about four minutes.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections import Counter
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
    manage_shell,
    pg_execute,
    run_cmd,
)

DB = "beacon_bench_recovery"
REDIS_PORT = 6390
SMTP_PORT = 18130
BATCH_SIZE = 250
SMTP_PAUSE = 0.01  # seconds per message: the batches last long enough to be killed mid-way
KILL_AT = 0.3  # of the messages accepted
RUN_TIMEOUT = 150
DOC_START = "<!-- bench:recovery:start -->"
DOC_END = "<!-- bench:recovery:end -->"
SCENARIOS = ["baseline", "worker-kill", "redis-kill"]
# A worker killed while the server accepts a message never marks it sent: that one message
# goes again (same Message-ID), as docs/notifications.md says. Nothing else may.
ALLOWED_TWICE = {"baseline": 0, "worker-kill": 1, "redis-kill": 0}

SEED_CODE = """
import json
from django.utils import timezone
from components.models import Component
from incidents.notify.models import Channel, Subscriber, SubscriberState
Component.objects.get_or_create(name="API", defaults={"position": 1})
now = timezone.now()
Subscriber.objects.bulk_create(
    Subscriber(channel=Channel.EMAIL, email=f"reader{i}@example.com", state=SubscriberState.ACTIVE,
               confirmed_at=now)
    for i in range(%d)
)
print("BENCHJSON " + json.dumps({"subscribers": Subscriber.objects.count()}))
"""

POST_CODE = """
import json, time
from components.models import Component, ComponentStatus
from incidents.models import IncidentStatus
from incidents.notify.models import NotificationEvent
from incidents.services import incident_create
api = Component.objects.get(name="API")
incident = incident_create(
    name="API unavailable", status=IncidentStatus.INVESTIGATING, body="Investigating.",
    component_statuses={api: ComponentStatus.MAJOR_OUTAGE}, deliver_notifications=True,
)
committed = time.time()
event = NotificationEvent.objects.get(incident=incident)
print("BENCHJSON " + json.dumps({"committed": committed, "event": event.pk}))
"""

# aiosmtpd in its own process: 10 ms per message, one line per accepted message.
SINK_CODE = """
import asyncio, sys
from aiosmtpd.controller import Controller

class Sink:
    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(float(sys.argv[3]))
        for rcpt in envelope.rcpt_tos:
            print("rcpt", rcpt, flush=True)
        return "250 OK"

controller = Controller(Sink(), hostname=sys.argv[1], port=int(sys.argv[2]))
controller.start()
print("ready", flush=True)
try:
    asyncio.run(asyncio.Event().wait())
finally:
    controller.stop()
"""


def queued(event: int) -> int:
    sql = f"SELECT count(*) FROM incidents_delivery WHERE event_id = {event} AND state <> 'sent'"
    return pg_execute(sql, DB)[0][0]


def received(sink) -> Counter:
    text = sink.log_path.read_text(errors="replace")
    return Counter(re.findall(r"^rcpt (\S+)$", text, flags=re.M))


def wait_for(predicate, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


class Stack:
    """Redis, the SMTP server, beat and two workers, each started and stopped by pid."""

    def __init__(self, procs: Processes, env: dict, tmp: Path):
        self.procs, self.env, self.tmp = procs, env, tmp
        self.workers: dict[str, subprocess.Popen] = {}
        self.sink = self.redis = None
        (tmp / "sink.py").write_text(SINK_CODE)

    def start_redis(self) -> None:
        self.redis = self.procs.start(
            "redis",
            [
                "redis-server",
                "--port",
                str(REDIS_PORT),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            self.env,
        )
        ping = ["redis-cli", "-h", HOST, "-p", str(REDIS_PORT), "ping"]
        if not wait_for(lambda: "PONG" in run_cmd(ping, check=False), 20, 0.2):
            raise RuntimeError("redis-server did not start")

    def kill_redis(self) -> None:
        self.procs.stop(self.redis, sig=signal.SIGKILL)

    def start_sink(self, label: str) -> None:
        argv = [
            str(BIN / "python"),
            str(self.tmp / "sink.py"),
            HOST,
            str(SMTP_PORT),
            str(SMTP_PAUSE),
        ]
        self.sink = self.procs.start(f"sink-{label}", argv, self.env)
        if not wait_for(lambda: "ready" in self.sink.log_path.read_text(), 20):
            raise RuntimeError("the SMTP server did not start")

    def stop_sink(self) -> None:
        self.procs.stop(self.sink)

    def start_worker(self, name: str) -> None:
        argv = [
            str(BIN / "celery"),
            "-A",
            "statuspage",
            "worker",
            "-Q",
            "notify,default",
            "--pool",
            "solo",
            "-n",
            f"{name}@%h",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ]
        self.workers[name] = self.procs.start(name, argv, self.env)

    def kill_worker(self, name: str) -> None:
        self.procs.stop(self.workers[name], sig=signal.SIGKILL)

    def start_beat(self) -> None:
        schedule = self.tmp / "celerybeat-schedule"
        argv = [
            str(BIN / "celery"),
            "-A",
            "statuspage",
            "beat",
            "-s",
            str(schedule),
            "--loglevel",
            "INFO",
        ]
        self.procs.start("beat", argv, self.env)


def one_run(stack: Stack, scenario: str, n: int, number: int) -> dict:
    label = f"{scenario}-{number}"
    stack.start_sink(label)
    try:
        posted = manage_shell(stack.env, POST_CODE)
        event, committed = posted["event"], posted["committed"]
        if not wait_for(lambda: sum(received(stack.sink).values()) >= n * KILL_AT, 60, 0.02):
            raise RuntimeError(f"{label}: {KILL_AT:.0%} of the messages never arrived")
        failed_at = time.time()
        at_failure = sum(received(stack.sink).values())
        if scenario == "worker-kill":
            stack.kill_worker("w1")
            stack.start_worker("w1")
        elif scenario == "redis-kill":
            stack.kill_redis()
            time.sleep(1)
            stack.start_redis()

        def everyone() -> bool:
            return len(received(stack.sink)) >= n and queued(event) == 0

        done = wait_for(everyone, RUN_TIMEOUT, 0.2)
        finished = time.time()
        time.sleep(3)  # a message sent twice would arrive now
        counts = received(stack.sink)
    finally:
        stack.stop_sink()
    result = {
        "scenario": scenario,
        "run": number,
        "complete": done,
        "accepted_at_failure": at_failure,
        "recovery_s": round(finished - failed_at, 2) if done else None,
        "total_s": round(finished - committed, 2) if done else None,
        "recipients": len(counts),
        "messages": sum(counts.values()),
        "duplicates": sum(counts.values()) - len(counts),
    }
    log(f"{label}: {result}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")

    tmp = Path(tempfile.mkdtemp(prefix="beacon-bench-recovery-"))
    procs = Processes(tmp)
    env = beacon_env(DB, tmp / "var")
    env.update(
        REDIS_URL=f"redis://{HOST}:{REDIS_PORT}/0",
        CACHE_KEY_PREFIX="beacon-bench-recovery",
        SNAPSHOT_RENDER_ON_WRITE="false",
        EMAIL_URL=f"smtp://{HOST}:{SMTP_PORT}",
        NOTIFY_EMAIL_BATCH_SIZE=str(BATCH_SIZE),
        LOG_LEVEL="WARNING",
    )
    ok = False
    try:
        started = datetime.now(UTC)
        load_start = loadavg()
        pg_execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        pg_execute(f"CREATE DATABASE {DB}")
        log("migrating")
        run_cmd([str(BIN / "python"), "manage.py", "migrate", "-v0"], env=env)
        seeded = manage_shell(env, SEED_CODE % args.subscribers)
        log(f"{seeded['subscribers']:,} subscribers")
        stack = Stack(procs, env, tmp)
        stack.start_redis()
        stack.start_beat()
        stack.start_worker("w1")
        stack.start_worker("w2")
        time.sleep(3)  # the workers connect
        runs = [
            one_run(stack, scenario, args.subscribers, number)
            for number in range(1, args.runs + 1)
            for scenario in scenarios
        ]
        result = {
            "started": started.isoformat(timespec="seconds"),
            "load_start": load_start,
            "subscribers": args.subscribers,
            "settings": {
                "lease_s": 30,
                "sweep_s": 10,
                "batch": BATCH_SIZE,
                "smtp_pause_s": SMTP_PAUSE,
                "kill_at": KILL_AT,
            },
            "runs": runs,
            "summary": summarise(runs, scenarios),
            "load_end": loadavg(),
        }
        RESULTS_DIR.mkdir(exist_ok=True)
        out = RESULTS_DIR / f"recovery-{started:%Y%m%dT%H%M%SZ}.json"
        out.write_text(json.dumps(result, indent=2))
        log(f"results: {out.relative_to(ROOT)}")
        if not args.no_doc:
            write_doc(result, out, args)
            log(f"updated {DOC.relative_to(ROOT)}")
        ok = all(r["complete"] and r["duplicates"] <= ALLOWED_TWICE[r["scenario"]] for r in runs)
        if not ok:
            log("a run did not finish, or sent more than it may twice: see the results")
    finally:
        procs.stop_all()
        pg_execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        if ok and not args.keep_logs:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"logs kept in {tmp}")
    if not ok:
        raise SystemExit(1)


def summarise(runs: list[dict], scenarios: list[str]) -> dict:
    summary = {}
    for scenario in scenarios:
        mine = [r for r in runs if r["scenario"] == scenario]
        done = [r for r in mine if r["complete"]]
        summary[scenario] = {
            "runs": len(mine),
            "complete": len(done),
            "recovery_median_s": _median([r["recovery_s"] for r in done]),
            "recovery_max_s": max((r["recovery_s"] for r in done), default=None),
            "total_median_s": _median([r["total_s"] for r in done]),
            "duplicates": sum(r["duplicates"] for r in mine),
        }
    return summary


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def write_doc(result: dict, out: Path, args) -> None:
    names = {
        "baseline": "Nothing killed (the work itself)",
        "worker-kill": "A worker killed (SIGKILL) mid-batch, restarted at once",
        "redis-kill": "Redis killed (SIGKILL, no persistence), back after 1 s",
    }
    rows = []
    for scenario, s in result["summary"].items():
        rows.append(
            f"| {names[scenario]} | {s['complete']} / {s['runs']} "
            f"| {_num(s['recovery_median_s'])} | {_num(s['recovery_max_s'])} "
            f"| {_num(s['total_median_s'])} | {s['duplicates']} |"
        )
    rows_text = "\n".join(rows)
    command = (
        f"bench/recovery.py --subscribers {args.subscribers} --runs {args.runs}"
        f" --scenarios {args.scenarios}"
    )
    text = f"""{DOC_START}
Last run: {result["started"]}, `{command}` (`make bench-recovery`; raw:
`{out.relative_to(ROOT)}`). Load average at the start {result["load_start"]}, at the end
{result["load_end"]}. {result["subscribers"]:,} email subscribers, batches of {BATCH_SIZE},
two workers (`--pool solo`) and beat, an SMTP server taking {SMTP_PAUSE * 1000:g} ms a
message; the failure comes when {KILL_AT:.0%} of the messages were accepted.

| Failure | Runs complete | From the failure to the last message, median (s) | … worst (s) \
| From the incident's commit, median (s) | Messages sent twice (all runs) |
| --- | ---: | ---: | ---: | ---: | ---: |
{rows_text}
{DOC_END}"""
    doc = DOC.read_text()
    if DOC_START in doc:
        doc = re.sub(
            re.escape(DOC_START) + ".*?" + re.escape(DOC_END), lambda _: text, doc, flags=re.S
        )
    else:
        doc = doc.rstrip() + "\n\n## Recovery\n\n" + text + "\n"
    DOC.write_text(doc)


def _num(value) -> str:
    return "–" if value is None else f"{value:g}"


if __name__ == "__main__":
    os.chdir(ROOT)
    main()

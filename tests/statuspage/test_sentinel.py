"""Redis behind Sentinel (REDIS_SENTINELS): the cache, the rate limits and the Celery broker
follow the master through a failover, and a failover in the middle of sending still gives each
subscriber one message. Real parts: a Redis master, a replica and a sentinel on free ports."""

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from django.core.cache import cache

from incidents import tasks
from incidents.notify.models import Delivery, DeliveryState, NotificationEvent
from statuspage.celery import app
from statuspage.lib import ratelimit, redis_sentinel
from statuspage.public import metrics
from statuspage.public.snapshots import keys, store
from tests.incidents.factories import SubscriberFactory, open_incident
from tests.incidents.notify.conftest import CapturingHandler, serving_smtp
from tests.incidents.notify.test_delivery_worker import worker_process
from tests.statuspage.test_metrics_endpoint import publish

MASTER_NAME = "beacon"
# How long a failover may take before the tests give up. SENTINEL FAILOVER skips the vote and
# the down-after wait, and promotes the replica within a second or two.
FAILOVER_SECONDS = 30.0

redis_server = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError):
            if predicate():
                return True
        time.sleep(interval)
    return False


@dataclass
class SentinelSet:
    directory: Path
    ports: dict[str, int] = field(default_factory=dict)  # "a", "b" (Redis) and "sentinel"
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.ports["sentinel"])]

    def client(self, name: str) -> redis.Redis:
        # The servers listen on 127.0.0.1 only; "localhost" may try ::1 first, where any other
        # process on the machine may hold the same port number.
        return redis.Redis(
            host="127.0.0.1", port=self.ports[name], socket_timeout=2, socket_connect_timeout=2
        )

    def sentinel(self) -> redis.Redis:
        return self.client("sentinel")

    def master(self) -> str:
        """Which of "a" and "b" the sentinel names master now."""
        host, port = self.sentinel().sentinel_get_master_addr_by_name(MASTER_NAME)
        return next(name for name in ("a", "b") if self.ports[name] == int(port))

    def replica(self) -> str:
        return "b" if self.master() == "a" else "a"

    def start(self, name: str, *args: str) -> None:
        self.processes.append(
            subprocess.Popen(
                [redis_server, *args],
                cwd=self.directory,
                stdout=(self.directory / f"{name}.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
        )

    def settled(self) -> bool:
        """The sentinel knows a master and an in-sync replica, and each server agrees."""
        # As redis-py's Sentinel judges it before naming a master to a client: one the
        # sentinel has only just seen (or saw late on a loaded host) is not found yet.
        state = self.sentinel().sentinel_master(MASTER_NAME)
        if not state["is_master"] or state["is_sdown"] or state["is_odown"]:
            return False
        master, replica = self.master(), self.replica()
        if self.client(master).info("replication")["role"] != "master":
            return False
        info = self.client(replica).info("replication")
        if info["role"] != "slave" or info.get("master_link_status") != "up":
            return False
        if int(info.get("master_port", 0)) != self.ports[master]:
            return False
        known = self.sentinel().sentinel_slaves(MASTER_NAME)
        return any(
            int(r["port"]) == self.ports[replica]
            and not ({"s_down", "o_down", "disconnected"} & set(r["flags"].split(",")))
            for r in known
        )

    def failover(self) -> None:
        """Make the replica master, as the sentinels would when the master dies."""
        self.sentinel().execute_command("SENTINEL", "FAILOVER", MASTER_NAME)

    def promoted(self, old_master: str) -> bool:
        """The sentinel names the replica master, and it acts as one."""
        master = self.master()
        return master != old_master and self.client(master).info("replication")["role"] == "master"

    def wait_until_failed_over(self, old_master: str) -> None:
        assert wait_for(lambda: self.promoted(old_master), FAILOVER_SECONDS), (
            "the sentinel did not promote the replica"
        )
        # The sentinel tells the old master to follow the new one only at its next look at it,
        # up to 10 s later; sending that same REPLICAOF now is what it would do, sooner.
        self.client(old_master).replicaof("127.0.0.1", self.ports[self.master()])
        assert wait_for(self.settled, FAILOVER_SECONDS), "the old master never followed the new"


def _print_logs(directory: Path) -> None:
    for log in sorted(directory.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        print(f"--- {log.name} (last 40 lines) ---", *lines[-40:], sep="\n")


@contextlib.contextmanager
def sentinel_set(directory: Path) -> Iterator[SentinelSet]:
    directory.mkdir(parents=True, exist_ok=True)
    servers = SentinelSet(directory)
    servers.ports = {name: _free_port() for name in ("a", "b", "sentinel")}
    # A master waits repl-diskless-sync-delay (5 s) for more replicas before a full sync.
    common = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
    common += ("--repl-diskless-sync-delay", "0")
    try:
        servers.start("a", "--port", str(servers.ports["a"]), *common)
        servers.start(
            "b",
            *("--port", str(servers.ports["b"]), *common),
            *("--replicaof", "127.0.0.1", str(servers.ports["a"])),
        )
        config = directory / "sentinel.conf"  # the sentinel rewrites its configuration
        config.write_text(
            f"port {servers.ports['sentinel']}\n"
            "bind 127.0.0.1\n"
            f"dir {directory}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {servers.ports['a']} 1\n"
            # The tests fail over with SENTINEL FAILOVER, which skips this wait. A short one
            # let a loaded CI host (two shards on two cores) stall the master past it and fail
            # over on its own, between the test's look at the master and its next command.
            f"sentinel down-after-milliseconds {MASTER_NAME} 60000\n"
            f"sentinel failover-timeout {MASTER_NAME} 5000\n"
            # Told up front, the replica is known at once; found through the master's INFO,
            # which the sentinel reads every 10 s, it took that long to settle.
            f"sentinel known-replica {MASTER_NAME} 127.0.0.1 {servers.ports['b']}\n"
        )
        servers.start("sentinel", str(config), "--sentinel")
        assert wait_for(servers.settled, 30), "the sentinel never saw the master and replica"
        yield servers
    finally:
        _print_logs(directory)  # pytest shows what a test printed only when the test failed
        for process in servers.processes:
            process.terminate()
        for process in servers.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


pytestmark = pytest.mark.skipif(redis_server is None, reason="needs redis-server")


@pytest.fixture
def servers(tmp_path):
    with sentinel_set(tmp_path / "redis") as started:
        yield started


def sentinel_cache(servers: SentinelSet, prefix: str) -> dict:
    """CACHES["default"] as settings.py builds it from REDIS_SENTINELS."""
    return {
        "BACKEND": "statuspage.lib.redis_sentinel.SentinelRedisCache",
        "LOCATION": MASTER_NAME,
        "KEY_PREFIX": prefix,
        "OPTIONS": {
            "sentinels": servers.sentinels,
            "master_name": MASTER_NAME,
            "db": 0,
            "socket_connect_timeout": 0.5,
            "socket_timeout": 1.0,
        },
    }


@pytest.fixture
def on_sentinel_cache(servers, settings):
    settings.CACHES = {"default": sentinel_cache(servers, "sentinel-test")}
    return servers


def test_sentinels_are_read_from_a_comma_separated_list():
    assert redis_sentinel.parse_sentinels("10.0.0.1:26379, sentinel-b:26380,sentinel-c") == [
        ("10.0.0.1", 26379),
        ("sentinel-b", 26380),
        ("sentinel-c", 26379),
    ]
    assert redis_sentinel.parse_sentinels("") == []
    with pytest.raises(ValueError):
        redis_sentinel.parse_sentinels("host:port")


def test_the_broker_url_names_every_sentinel_and_the_database():
    url = redis_sentinel.broker_url([("a", 1), ("b", 2)], db=13, password="p@ss")
    assert url == "sentinel://:p%40ss@a:1/13;sentinel://b:2"


def _keeps_working(operation) -> bool:
    """Whether `operation` succeeds within the failover allowance; the first attempts after the
    failover may meet the demoted master (a dropped connection or READONLY) and raise."""

    def attempt():
        try:
            return operation()
        except redis.RedisError:
            return False

    return wait_for(attempt, FAILOVER_SECONDS, interval=0.2)


def test_the_cache_follows_the_master_through_a_failover(on_sentinel_cache):
    servers = on_sentinel_cache
    old = servers.master()
    cache.set("before", "kept", 600)
    assert cache.get("before") == "kept"
    servers.client(old).execute_command("WAIT", 1, 2000)  # the replica has it

    servers.failover()
    servers.wait_until_failed_over(old)

    def writes_and_reads():
        cache.set("after", "written", 600)
        return cache.get("after") == "written" and cache.get("before") == "kept"

    assert _keeps_working(writes_and_reads)
    new = servers.master()
    assert new != old
    # Written to the new master, and from there replicated to the old one, now its replica.
    assert servers.client(new).get(cache.make_key("after")) is not None
    assert servers.client(new).info("replication")["role"] == "master"


def test_a_rate_limit_keeps_its_count_through_a_failover(on_sentinel_cache):
    servers = on_sentinel_cache
    window = 24 * 3600
    verdicts = [ratelimit.hit("sentinel", limit=3, window=window) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    old = servers.master()
    servers.client(old).execute_command("WAIT", 1, 2000)

    servers.failover()
    servers.wait_until_failed_over(old)

    # While the master changes the limiter lets attempts through rather than failing them
    # (ratelimit: the cache unreachable); once it has the new master, the count is there.
    assert wait_for(
        lambda: not ratelimit.hit("sentinel", limit=3, window=window).allowed, FAILOVER_SECONDS
    )
    keys = servers.client(servers.master()).keys("*ratelimit:sentinel*")
    assert keys


class FailingOverHandler(CapturingHandler):
    """Starts a failover of the broker when the server is about to accept message `at`."""

    at = 0
    servers: SentinelSet | None = None
    failed_over_from = ""

    async def handle_DATA(self, server, session, envelope):
        if not self.failed_over_from and len(self.messages) + 1 == self.at:
            self.failed_over_from = self.servers.master()
            self.servers.failover()
        return await super().handle_DATA(server, session, envelope)


@contextlib.contextmanager
def app_on_broker(url: str, options: dict) -> Iterator[None]:
    """Publish this process's tasks (the doorbell, the sweeps) to `url`, then to the broker
    it had again: the app keeps its connection pools, made for the broker it started with,
    and they are put back as they were."""
    saved = (
        app.conf.broker_url,
        app.conf.broker_transport_options,
        app._pool,
        app.amqp._producer_pool,
    )
    app.conf.broker_url, app.conf.broker_transport_options = url, options
    app._pool = app.amqp._producer_pool = None
    try:
        yield
    finally:
        if app._pool is not None:
            app._pool.force_close_all()
        (
            app.conf.broker_url,
            app.conf.broker_transport_options,
            app._pool,
            app.amqp._producer_pool,
        ) = saved


needs_postgres = pytest.mark.skipif(
    "postgres" not in os.environ.get("DATABASE_URL", ""),
    reason="a worker in another process shares PostgreSQL with the test",
)


@needs_postgres
def test_a_broker_failover_mid_send_still_gives_each_subscriber_one_message(
    transactional_db, page, servers, settings, tmp_path, monkeypatch
):
    settings.CACHES = {"default": sentinel_cache(servers, f"sentinel-{tmp_path.name}")}
    settings.BEACON_NOTIFY_LEASE_SECONDS = 3
    settings.BEACON_NOTIFY_REDISPATCH_SECONDS = 3
    # The worker reads its broker and cache from the environment, as in production.
    sentinels = ",".join(f"{host}:{port}" for host, port in servers.sentinels)
    monkeypatch.setenv("REDIS_SENTINELS", sentinels)
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", MASTER_NAME)
    monkeypatch.delenv("REDIS_URL", raising=False)
    readers = SubscriberFactory.create_batch(35)
    url = redis_sentinel.broker_url(servers.sentinels)
    options = {"visibility_timeout": 3600, "master_name": MASTER_NAME}

    with (
        app_on_broker(url, options),
        serving_smtp(FailingOverHandler(), settings) as smtp_server,
    ):
        smtp_server.at = 14  # in the middle of the second batch of ten
        smtp_server.servers = servers
        worker = worker_process(settings, tmp_path, queues="notify,default")
        try:
            open_incident(name="Checkout is down")  # rings the doorbell after commit
            swept = [0.0]

            def sweeping(predicate):
                """As beat would: a sweep now and then hands out what a doorbell did not
                (published before the worker listened, or lost with the old master)."""

                def check():
                    if time.monotonic() - swept[0] > 1:
                        with contextlib.suppress(Exception):  # publishing may meet the old master
                            tasks.sweep_notifications.apply_async(expires=2)
                        swept[0] = time.monotonic()
                    return predicate()

                return check

            started = sweeping(lambda: smtp_server.failed_over_from)
            assert wait_for(started, 90, interval=0.5), "no failover started"
            servers.wait_until_failed_over(smtp_server.failed_over_from)

            def everyone_has_it():
                return (
                    len(smtp_server.messages) >= len(readers)
                    and not Delivery.objects.filter(state=DeliveryState.QUEUED).exists()
                )

            assert wait_for(sweeping(everyone_has_it), 120, interval=0.5)
            time.sleep(2)  # anything sent twice would arrive now
        finally:
            worker.terminate()
            worker.wait(timeout=30)

    # The queues lived on the master the sentinel names, not on REDIS_URL's server.
    assert servers.client(servers.master()).exists("_kombu.binding.notify")
    received = Counter(message["To"] for message in smtp_server.messages)
    assert received == {reader.email: 1 for reader in readers}
    event = NotificationEvent.objects.get()
    assert event.deliveries.filter(state=DeliveryState.SENT).count() == len(readers)


def test_metrics_read_the_queues_on_the_master_the_sentinels_name(servers, settings):
    settings.CELERY_BROKER_URL = redis_sentinel.broker_url(servers.sentinels, db=0)
    options = {"visibility_timeout": 3600, "master_name": MASTER_NAME}
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = options
    publish(settings.CELERY_BROKER_URL, options, "checks", count=2)
    publish(settings.CELERY_BROKER_URL, options, "checks", count=3, priority=6)

    assert metrics.queue_depths(["checks", "notify"]) == {"checks": 5, "notify": 0}


def test_snapshot_announcements_reach_the_master_the_sentinels_name(on_sentinel_cache):
    store.announce("stored", key="/", generation="g1", files=True)

    master = on_sentinel_cache.client(on_sentinel_cache.master())
    assert master.get(store.shared_name(keys.CHANGED_SEQUENCE)) == b"1"

"""/metrics: what Prometheus scrapes, parsed with prometheus-client's own parser."""

import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from kombu import Connection, Exchange, Queue
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from components.checks.outcome import Outcome
from components.checks.rollups import check_rollups_update
from components.checks.services import check_results_prune, check_results_record
from components.models import (
    CheckLocationState,
    CheckResult,
    CheckRollup,
    ComponentStatus,
    Verdict,
)
from incidents.models import Impact, Incident, IncidentKind, IncidentStatus
from incidents.notify import delivery
from incidents.notify.models import Delivery, DeliveryState, NotificationEvent
from incidents.services import incident_create
from statuspage.public import metrics
from statuspage.public.snapshots import keys
from tests.components.factories import (
    ComponentFactory,
    ComponentGroupFactory,
    HealthCheckFactory,
)
from tests.incidents.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 3, 10, 12, 30, tzinfo=UTC)
HOUR = datetime(2025, 3, 10, 12, tzinfo=UTC)
DAY = datetime(2025, 3, 10, tzinfo=UTC)


@pytest.fixture(autouse=True)
def open_metrics(settings, tmp_path):
    """No token, loopback allowed (the test client's address), a broker folder of our own."""
    settings.BEACON_METRICS_TOKEN = ""
    settings.BEACON_METRICS_ALLOWED_IPS = ["127.0.0.1", "::1"]
    settings.BEACON_TRUSTED_PROXY_HOPS = 0
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = broker_folders(tmp_path / "broker")


def broker_folders(root):
    for name in ("queue", "processed", "control"):
        (root / name).mkdir(parents=True)
    return {
        "data_folder_in": str(root / "queue"),
        "data_folder_out": str(root / "queue"),
        "processed_folder": str(root / "processed"),
        "control_folder": str(root / "control"),
        "store_processed": False,
    }


def scrape(client, path="/metrics", **headers):
    response = client.get(path, **headers)
    assert response.status_code == 200, response.content
    return list(text_string_to_metric_families(response.content.decode()))


def samples(families, name, **labels):
    """{labels: value} of the samples called `name` whose labels include `labels`."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in families
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    }


def value(families, name, **labels):
    [found] = samples(families, name, **labels).values()
    return found


# What is exposed


def test_each_component_has_one_gauge_per_status_and_exactly_one_set(client):
    backend = ComponentGroupFactory(name="Backend")
    api = ComponentFactory(name="API", group=backend, partial_outage=True)
    ComponentFactory(name="Website")

    families = scrape(client)

    assert families[0].type == "gauge"
    api_series = samples(families, "beacon_component_status", component="API")
    assert len(api_series) == len(ComponentStatus.values)
    assert sum(api_series.values()) == 1
    assert value(families, "beacon_component_status", component="API", status="partial_outage") == 1
    assert value(families, "beacon_component_status", component="API", status="operational") == 0
    assert {dict(labels)["group"] for labels in api_series} == {"Backend"}
    assert {dict(labels)["component_id"] for labels in api_series} == {api.public_id}
    assert sum(samples(families, "beacon_component_status", component="Website").values()) == 1
    assert (
        value(
            families, "beacon_component_status", component="Website", group="", status="operational"
        )
        == 1
    )


def test_open_incidents_are_counted_by_impact_with_every_impact_present(client):
    incident_create(name="Slow API", status=IncidentStatus.INVESTIGATING, impact_override="minor")
    incident_create(name="Errors", status=IncidentStatus.IDENTIFIED, impact_override="major")
    incident_create(name="More errors", status=IncidentStatus.MONITORING, impact_override="major")
    incident_create(name="Old outage", status=IncidentStatus.RESOLVED, impact_override="critical")
    Incident.objects.create(
        kind=IncidentKind.MAINTENANCE, name="Upgrade", status=IncidentStatus.IN_PROGRESS
    )
    Incident.objects.create(
        kind=IncidentKind.MAINTENANCE, name="Later", status=IncidentStatus.SCHEDULED
    )

    families = scrape(client)

    assert samples(families, "beacon_incidents_open") == {
        (("impact", impact),): {"minor": 1, "major": 2}.get(impact, 0) for impact in Impact.values
    }
    assert value(families, "beacon_maintenances_active") == 1


def test_check_latency_quantiles_verdicts_and_last_run_by_location(client):
    check = HealthCheckFactory(
        name="Health", component__name="API", locations=["eu", "us"], verdict=Verdict.UP
    )
    check.last_run_at = NOW - timedelta(seconds=20)
    check.save()
    CheckLocationState.objects.create(health_check=check, location="eu", verdict=Verdict.UP)
    CheckLocationState.objects.create(health_check=check, location="us", verdict=Verdict.DOWN)
    for ms in range(1, 101):  # 1 … 100 ms from eu, in the last hour
        result(check, "eu", NOW - timedelta(seconds=30 * ms), latency_ms=ms)
    result(check, "us", NOW - timedelta(minutes=5), Verdict.DOWN, latency_ms=4000)
    result(check, "us", NOW - timedelta(minutes=61), latency_ms=9)  # too long ago
    result(check, "us", NOW - timedelta(minutes=1), Verdict.DOWN)  # timed out: no latency

    with time_machine.travel(NOW, tick=False):
        families = scrape(client)

    latency = samples(families, "beacon_check_latency_last_hour_seconds", check="Health")
    assert latency == {
        (("check", "Health"), ("check_id", str(check.pk)), ("location", loc), ("quantile", q)): v
        for loc, q, v in [
            ("eu", "0.5", 0.05),
            ("eu", "0.95", 0.095),
            ("eu", "0.99", 0.099),
            ("us", "0.5", 4.0),
            ("us", "0.95", 4.0),
            ("us", "0.99", 4.0),
        ]
    }
    assert value(families, "beacon_check_up", check="Health", component="API") == 1
    assert value(families, "beacon_check_location_up", check="Health", location="eu") == 1
    assert value(families, "beacon_check_location_up", check="Health", location="us") == 0
    assert value(
        families, "beacon_check_last_run_timestamp_seconds", check="Health"
    ) == pytest.approx((NOW - timedelta(seconds=20)).timestamp())


def test_check_latency_histograms_count_every_recorded_run_by_location(client):
    check = HealthCheckFactory(name="Health", component__name="API", locations=["eu", "us"])
    check_results_record(
        location="eu",
        results=[(check, Outcome.up(latency_ms=ms)) for ms in (3, 40, 40, 700)],
    )
    check_results_record(location="us", results=[(check, Outcome.up(latency_ms=20_000))])
    check_results_record(location="us", results=[(check, Outcome.down("timed out"))])

    families = scrape(client)

    [histogram] = [f for f in families if f.name == "beacon_check_latency_seconds"]
    assert histogram.type == "histogram"
    eu = {"check": "Health", "check_id": str(check.pk), "location": "eu"}
    buckets = samples(families, "beacon_check_latency_seconds_bucket", **eu)
    by_bound = {dict(labels)["le"]: count for labels, count in buckets.items()}
    assert by_bound["0.005"] == 1 and by_bound["0.025"] == 1
    assert by_bound["0.05"] == 3 and by_bound["0.5"] == 3 and by_bound["1.0"] == 4
    assert by_bound["+Inf"] == 4
    assert value(families, "beacon_check_latency_seconds_count", **eu) == 4
    assert value(families, "beacon_check_latency_seconds_sum", **eu) == pytest.approx(0.783)
    us = {**eu, "location": "us"}
    assert value(families, "beacon_check_latency_seconds_bucket", **us, le="10.0") == 0
    assert value(families, "beacon_check_latency_seconds_count", **us) == 1  # not the timeout


def test_a_cache_that_is_away_costs_the_histogram_not_the_results(client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.2},
        }
    }
    check = HealthCheckFactory(name="Health")

    check_results_record(location="eu", results=[(check, Outcome.up(latency_ms=12))])

    assert CheckResult.objects.filter(health_check=check).count() == 1


def test_disabled_and_never_run_checks_report_no_verdict(client):
    HealthCheckFactory(name="Off", enabled=False, verdict=Verdict.DOWN)
    HealthCheckFactory(name="New")

    families = scrape(client)

    assert samples(families, "beacon_check_up") == {}
    assert samples(families, "beacon_check_last_run_timestamp_seconds") == {}
    assert value(families, "beacon_check_results_total", check="New", outcome="up") == 0


def result(check, location, at, verdict=Verdict.UP, *, latency_ms=None):
    CheckResult.objects.create(
        health_check=check, location=location, at=at, verdict=verdict, latency_ms=latency_ms
    )


def record(check, at, *, down=False):
    location = "eu" if at.minute % 20 else "us"
    result(check, location, at, Verdict.DOWN if down else Verdict.UP, latency_ms=120.0)


def rollup(check, period, start, *, count, failures=0):
    CheckRollup.objects.create(
        health_check=check, period=period, start=start, count=count, failures=failures
    )


STOPPED = datetime(2025, 3, 9, 10, 30, tzinfo=UTC)
RESUMED = datetime(2025, 3, 9, 14, tzinfo=UTC)


def test_check_result_counters_count_every_result_and_never_go_down(settings):
    """Across days of results, rollups, pruning and a rollup task that stopped for hours."""
    settings.BEACON_CHECK_RESULT_RETENTION_DAYS = 1
    check = HealthCheckFactory(name="Health")
    start = datetime(2025, 3, 8, 21, tzinfo=UTC)
    recorded = failed = 0
    previous = (0, 0)
    for step in range(60 * 6):  # every 10 minutes for 60 hours
        at = start + timedelta(minutes=10 * step, seconds=7)
        down = step % 7 == 0
        record(check, at, down=down)
        recorded, failed = recorded + 1, failed + down
        now = at + timedelta(seconds=1)
        # The rollup task stops for hours: its last hourly rollup is left partial.
        rollups_stopped = STOPPED <= now < RESUMED
        with time_machine.travel(now, tick=False):
            if not rollups_stopped:
                check_rollups_update(now=now)
            if at.minute == 0:
                check_results_prune()
            totals = metrics.result_totals([check_with_latest_rollup(check)], now=now)
        assert totals[check.pk] == (recorded, failed)
        assert totals[check.pk] >= previous
        previous = totals[check.pk]
    assert CheckResult.objects.filter(at__lt=start + timedelta(days=1)).count() == 0  # pruned
    assert CheckRollup.objects.filter(period="day").count() == 4  # 8th to 11th


def check_with_latest_rollup(check):
    return next(c for c in metrics._checks() if c.pk == check.pk)


def test_check_results_are_exposed_as_counters_by_outcome(client):
    check = HealthCheckFactory(name="Health", component__name="API")
    rollup(check, "day", datetime(2025, 3, 8, tzinfo=UTC), count=1440, failures=40)
    rollup(check, "hour", datetime(2025, 3, 8, 5, tzinfo=UTC), count=60, failures=2)  # in the day
    rollup(check, "day", datetime(2025, 3, 10, tzinfo=UTC), count=999, failures=999)  # partial
    rollup(check, "hour", datetime(2025, 3, 10, 9, tzinfo=UTC), count=60, failures=3)
    # The latest hour may be partial: the raw results since the previous hour are counted.
    rollup(check, "hour", datetime(2025, 3, 10, 12, tzinfo=UTC), count=999, failures=999)
    record(check, datetime(2025, 3, 10, 11, 5, tzinfo=UTC), down=True)
    record(check, datetime(2025, 3, 10, 12, 10, tzinfo=UTC))
    record(check, datetime(2025, 3, 10, 12, 20, tzinfo=UTC))

    with time_machine.travel(NOW, tick=False):
        families = scrape(client)

    [family] = [f for f in families if f.name == "beacon_check_results"]
    assert family.type == "counter"
    assert value(families, "beacon_check_results_total", check="Health", outcome="down") == 44
    assert value(families, "beacon_check_results_total", check="Health", outcome="up") == (
        1440 + 60 + 3 - 44
    )
    assert set(samples(families, "beacon_check_results_total", check="Health")) == {
        (("check", "Health"), ("check_id", str(check.pk)), ("component", "API"), ("outcome", o))
        for o in ("up", "down")
    }


def test_notifications_are_counted_by_channel_and_state(client, page):
    api = ComponentFactory(name="API")
    first, second, third = SubscriberFactory.create_batch(3)
    hook = SubscriberFactory(webhook=True)
    incident = incident_create(
        name="Errors",
        status=IncidentStatus.INVESTIGATING,
        body="Looking.",
        component_statuses={api: ComponentStatus.MAJOR_OUTAGE},
    )
    event = NotificationEvent.objects.get(update__incident=incident)
    delivery.event_expand(event_id=event.pk)
    Delivery.objects.filter(subscriber=first).update(state=DeliveryState.SENT)
    Delivery.objects.filter(subscriber=second).update(state=DeliveryState.FAILED)
    Delivery.objects.filter(subscriber=hook).update(state=DeliveryState.SENT)

    families = scrape(client)

    assert samples(families, "beacon_notifications_queued") == {
        (("channel", "email"),): 1,
        (("channel", "webhook"),): 0,
        (("channel", "push"),): 0,
    }
    assert samples(families, "beacon_notification_deliveries") == {
        (("channel", "email"), ("state", "sent")): 1,
        (("channel", "email"), ("state", "failed")): 1,
        (("channel", "webhook"), ("state", "sent")): 1,
        (("channel", "webhook"), ("state", "failed")): 0,
        (("channel", "push"), ("state", "sent")): 0,
        (("channel", "push"), ("state", "failed")): 0,
    }
    assert third.deliveries.get().state == DeliveryState.QUEUED


# Queue depth


def publish(url, transport_options, queue, *, count, priority=None):
    with Connection(url, transport_options=transport_options) as conn:
        exchange = Exchange(queue, type="direct")
        declared = Queue(queue, exchange, routing_key=queue, max_priority=9)
        producer = conn.Producer()
        for n in range(count):
            producer.publish(
                {"n": n},
                exchange=exchange,
                routing_key=queue,
                declare=[declared],
                priority=priority,
            )


def test_queue_depth_counts_messages_in_the_file_system_broker(client, settings):
    HealthCheckFactory(locations=["eu", "us"])
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    publish("filesystem://", options, "notify", count=3)
    publish("filesystem://", options, "checks.eu", count=2)

    families = scrape(client)

    assert value(families, "beacon_queue_depth_up") == 1
    assert samples(families, "beacon_queue_depth") == {
        (("queue", "default"),): 0,
        (("queue", "checks"),): 0,
        (("queue", "notify"),): 3,
        (("queue", "snapshots"),): 0,
        (("queue", "checks.eu"),): 2,
        (("queue", "checks.us"),): 0,
    }


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a Redis server (REDIS_URL)")
def test_queue_depth_counts_messages_in_redis_including_priority_lists(settings):
    settings.CELERY_BROKER_URL = os.environ["REDIS_URL"]
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    queue, empty = f"test-{uuid.uuid4().hex}", f"test-{uuid.uuid4().hex}"
    try:
        publish(settings.CELERY_BROKER_URL, {}, queue, count=2)
        publish(settings.CELERY_BROKER_URL, {}, queue, count=3, priority=6)

        assert metrics.queue_depths([queue, empty]) == {queue: 5, empty: 0}
    finally:
        with Connection(settings.CELERY_BROKER_URL) as conn:
            conn.default_channel.queue_delete(queue)


def test_an_unreachable_broker_leaves_the_scrape_whole(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    ComponentFactory(name="API")

    started = time.monotonic()
    families = scrape(client)

    assert time.monotonic() - started < 3
    assert value(families, "beacon_queue_depth_up") == 0
    assert samples(families, "beacon_queue_depth") == {}
    assert sum(samples(families, "beacon_component_status", component="API").values()) == 1
    assert value(families, "beacon_scrape_duration_seconds") > 0


# Access


def test_an_allowed_address_scrapes_without_a_token(client):
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    assert response["Cache-Control"] == "no-store"
    assert client.get("/metrics/").status_code == 200


def test_other_addresses_are_forbidden(client):
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403


def test_allowed_networks_are_cidr_ranges(client, settings):
    settings.BEACON_METRICS_ALLOWED_IPS = ["10.0.0.0/8", "2001:db8::/32"]

    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="2001:db8::5").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


def test_behind_a_proxy_the_forwarded_address_is_the_one_checked(client, settings):
    settings.BEACON_TRUSTED_PROXY_HOPS = 1

    outside = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    local = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="127.0.0.1")

    assert outside.status_code == 403
    assert local.status_code == 200


def test_the_right_bearer_token_scrapes_from_anywhere(client, settings):
    settings.BEACON_METRICS_TOKEN = "s3cret-token"

    response = client.get(
        "/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer s3cret-token"
    )

    assert response.status_code == 200
    assert any(f.name == "beacon_component_status" for f in scrape_text(response))


def scrape_text(response):
    return list(text_string_to_metric_families(response.content.decode()))


def test_a_wrong_or_missing_token_is_unauthorized(client, settings):
    settings.BEACON_METRICS_TOKEN = "s3cret-token"

    wrong = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer nope")
    wrong_locally = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    missing = client.get("/metrics", REMOTE_ADDR="203.0.113.9")

    assert wrong.status_code == wrong_locally.status_code == missing.status_code == 401
    assert wrong["WWW-Authenticate"] == 'Bearer realm="metrics", error="invalid_token"'
    assert missing["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"beacon_" not in wrong.content + missing.content


def test_metrics_are_never_served_from_a_snapshot():
    assert keys.key_for("/metrics", "") is None


def test_only_gets_are_answered(client):
    assert client.post("/metrics").status_code == 405


# Cost

# Components, incidents (2), checks (5: the checks, two for counters, states, latencies),
# deliveries.
QUERIES = 9


def populate(n):
    for _ in range(n):
        component = ComponentFactory(group=ComponentGroupFactory(), major_outage=True)
        check = HealthCheckFactory(component=component, locations=["eu", "us"])
        CheckLocationState.objects.create(health_check=check, location="eu", verdict="up")
        rollup(check, "day", DAY - timedelta(days=2), count=5)
        rollup(check, "hour", HOUR - timedelta(hours=3), count=5)
        record(check, NOW - timedelta(minutes=5))
        incident_create(name="Down", status=IncidentStatus.INVESTIGATING)
        straggler = HealthCheckFactory(component=component)  # no rollups: raw results only
        record(straggler, NOW - timedelta(hours=5))
        SubscriberFactory()


def test_a_scrape_costs_the_same_few_queries_however_much_there_is(
    client, django_assert_max_num_queries
):
    populate(2)
    with time_machine.travel(NOW, tick=False):
        with CaptureQueriesContext(connection) as few:
            scrape(client)
        populate(10)
        with django_assert_max_num_queries(QUERIES), CaptureQueriesContext(connection) as many:
            families = scrape(client)

    assert len(many) == len(few)
    assert len(samples(families, "beacon_check_results_total")) == 2 * 2 * 12

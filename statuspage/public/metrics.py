"""`/metrics`: Beacon's state in the Prometheus text format, read from the database per scrape.

The web runs as several processes, so nothing is counted in memory: a collector asks the
database (a fixed handful of aggregate queries, however many components, checks and results
there are) and the broker when Prometheus scrapes. docs/metrics.md lists every metric.
"""

import hmac
import ipaddress
import logging
import os
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, F, OuterRef, Q, Subquery, Sum, Window
from django.db.models.functions import RowNumber
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from kombu.transport import redis as kombu_redis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from components.checks.latency import latency_histograms
from components.checks.rollups import bucket_start, first_complete_bucket
from components.checks.services import check_locations, queue_for
from components.models import (
    CheckLocationState,
    CheckResult,
    CheckRollup,
    Component,
    ComponentStatus,
    HealthCheck,
    RollupPeriod,
    Verdict,
)
from incidents.models import Impact, Incident
from incidents.notify.models import Channel, Delivery, DeliveryState
from statuspage.lib import redis_sentinel
from statuspage.lib.ratelimit import client_ip

logger = logging.getLogger(__name__)

# Latency quantiles over the last hour's raw results, as percents (nearest rank, like rollups).
LATENCY_WINDOW = timedelta(hours=1)
LATENCY_PERCENTS = {50: "0.5", 95: "0.95", 99: "0.99"}
# The queues every installation has (statuspage/celery.py); checks.<location> are added.
QUEUES = ("default", "checks", "notify", "snapshots")
BROKER_TIMEOUT_SECONDS = 1.0


class BeaconCollector(Collector):
    """Every Beacon metric, computed afresh on each collect()."""

    def __init__(self, *, now: datetime | None = None):
        self.now = now

    def collect(self):
        started = time.perf_counter()
        now = self.now or timezone.now()
        yield from component_metrics()
        yield from incident_metrics()
        checks = list(_checks())
        yield from check_metrics(checks, now=now)
        yield from notification_metrics()
        yield from queue_metrics(queue_names(checks))
        yield GaugeMetricFamily(
            "beacon_scrape_duration_seconds",
            "How long this scrape took to compute, in seconds.",
            value=time.perf_counter() - started,
        )


def component_metrics():
    status = GaugeMetricFamily(
        "beacon_component_status",
        "1 for the component's current status, 0 for each of the others.",
        labels=["component", "component_id", "group", "status"],
    )
    rows = Component.objects.in_page_order().values_list(
        "name", "public_id", "group__name", "status"
    )
    for name, public_id, group, current in rows:
        for choice in ComponentStatus.values:
            status.add_metric([name, public_id, group or "", choice], float(choice == current))
    yield status


def incident_metrics():
    counts = dict(
        Incident.objects.unresolved()
        .order_by()
        .values("impact")
        .annotate(n=Count("pk"))
        .values_list("impact", "n")
    )
    open_incidents = GaugeMetricFamily(
        "beacon_incidents_open", "Unresolved incidents, by impact.", labels=["impact"]
    )
    for impact in Impact.values:
        open_incidents.add_metric([impact], counts.get(impact, 0))
    yield open_incidents
    yield GaugeMetricFamily(
        "beacon_maintenances_active",
        "Scheduled maintenances in progress or being verified.",
        value=Incident.objects.active_maintenances().count(),
    )


# Health checks


def _checks():
    last_hourly = (
        CheckRollup.objects.filter(health_check=OuterRef("pk"), period=RollupPeriod.HOUR)
        .order_by("-start")
        .values("start")[:1]
    )
    return (
        HealthCheck.objects.annotate(last_hourly=Subquery(last_hourly))
        .select_related("component")
        .only(
            "name",
            "kind",
            "enabled",
            "locations",
            "verdict",
            "last_run_at",
            "component__name",
            "component__public_id",
        )
        .order_by("pk")
    )


def counted_from(check: HealthCheck, *, now: datetime) -> datetime:
    """Where a check's result counter switches from rollups to raw results.

    Rollups before it are final and raw results after it are all still kept, so the counter
    never goes down. The rollups task recomputes the previous and the current hour; a
    check's latest hourly rollup may be partial (the task stopped part-way through), so it
    is read from raw results too. Raw results are only read back to the retention limit.
    """
    previous_hour = bucket_start(now, RollupPeriod.HOUR) - timedelta(hours=1)
    retained = first_complete_bucket(
        now - timedelta(days=settings.BEACON_CHECK_RESULT_RETENTION_DAYS), RollupPeriod.HOUR
    )
    latest = getattr(check, "last_hourly", None) or retained  # annotated by the caller
    return min(previous_hour, max(latest, retained))


def _by_boundary(checks: list[HealthCheck], *, now: datetime) -> list[tuple[datetime, Q]]:
    """(boundary, which checks) pairs: one for the usual boundary, one per straggler."""
    groups: dict[datetime, list[int]] = defaultdict(list)
    for check in checks:
        groups[counted_from(check, now=now)].append(check.pk)
    if not groups:
        return []
    usual = max(groups, key=lambda boundary: len(groups[boundary]))
    others = [pk for boundary, pks in groups.items() if boundary != usual for pk in pks]
    pairs = [(usual, ~Q(health_check_id__in=others) if others else Q())]
    pairs += [(b, Q(health_check_id__in=pks)) for b, pks in groups.items() if b != usual]
    return pairs


def result_totals(checks: list[HealthCheck], *, now: datetime) -> dict[int, tuple[int, int]]:
    """(results, failures) ever recorded per check id: daily rollups for whole days before
    each check's boundary, hourly rollups for the rest of that day, raw results after it.
    Two queries."""
    pairs = _by_boundary(checks, now=now)
    if not pairs:
        return {}
    rolled = Q(pk__in=[])
    raw = Q(pk__in=[])
    for boundary, which in pairs:
        day = bucket_start(boundary, RollupPeriod.DAY)
        rolled |= which & (
            Q(period=RollupPeriod.DAY, start__lt=day)
            | Q(period=RollupPeriod.HOUR, start__gte=day, start__lt=boundary)
        )
        raw |= which & Q(at__gte=boundary)
    totals: Counter = Counter()
    failures: Counter = Counter()
    for check_id, n, down in (
        CheckRollup.objects.filter(rolled)
        .order_by()
        .values("health_check_id")
        .annotate(n=Sum("count"), down=Sum("failures"))
        .values_list("health_check_id", "n", "down")
    ):
        totals[check_id] += n
        failures[check_id] += down
    for check_id, n, down in (
        CheckResult.objects.filter(raw)
        .order_by()
        .values("health_check_id")
        .annotate(n=Count("pk"), down=Count("pk", filter=Q(verdict=Verdict.DOWN)))
        .values_list("health_check_id", "n", "down")
    ):
        totals[check_id] += n
        failures[check_id] += down
    return {check_id: (totals[check_id], failures[check_id]) for check_id in totals}


def latency_quantiles(*, now: datetime) -> dict[tuple[int, str], dict[str, float | None]]:
    """Nearest-rank latency quantiles (ms) of the last hour, per (check id, location).

    One query: the database ranks each location's latencies and returns only the rows at
    the quantiles' ranks (rank r holds the p-th percentile when r - 1 < p·n/100 ≤ r).
    """
    partition = [F("health_check_id"), F("location")]
    at_rank = Q()
    for percent in LATENCY_PERCENTS:
        at_rank |= Q(
            rank_floor__lt=F("n") * percent, rank_ceiling__gte=F("n") * percent
        )  # 100·(r-1) < p·n ≤ 100·r
    rows = (
        CheckResult.objects.filter(at__gte=now - LATENCY_WINDOW, latency_ms__isnull=False)
        .order_by()
        .annotate(
            rank=Window(RowNumber(), partition_by=partition, order_by=F("latency_ms").asc()),
            n=Window(Count("pk"), partition_by=partition),
        )
        .annotate(rank_floor=(F("rank") - 1) * 100, rank_ceiling=F("rank") * 100)
        .filter(at_rank)
        .values_list("health_check_id", "location", "rank", "n", "latency_ms")
    )
    quantiles: dict[tuple[int, str], dict[str, float | None]] = defaultdict(dict)
    for check_id, location, rank, n, latency in rows:
        for percent, label in LATENCY_PERCENTS.items():
            if 100 * (rank - 1) < percent * n <= 100 * rank:
                quantiles[(check_id, location)][label] = latency
    return quantiles


def check_metrics(checks: list[HealthCheck], *, now: datetime):
    labels = {check.pk: [check.name, str(check.pk), check.component.name] for check in checks}
    names = {check.pk: check.name for check in checks}

    results = CounterMetricFamily(
        "beacon_check_results",
        "Check runs recorded since the check was created (all locations), by outcome.",
        labels=["check", "check_id", "component", "outcome"],
    )
    totals = result_totals(checks, now=now)
    for check in checks:
        n, down = totals.get(check.pk, (0, 0))
        results.add_metric([*labels[check.pk], "up"], n - down)
        results.add_metric([*labels[check.pk], "down"], down)
    yield results

    up = GaugeMetricFamily(
        "beacon_check_up",
        "1 while an enabled check's verdict is up or degraded, 0 while down.",
        labels=["check", "check_id", "component"],
    )
    last_run = GaugeMetricFamily(
        "beacon_check_last_run_timestamp_seconds",
        "When the check last ran, as a Unix time.",
        labels=["check", "check_id", "component"],
    )
    for check in checks:
        if check.enabled and check.verdict != Verdict.UNKNOWN:
            up.add_metric(labels[check.pk], float(check.verdict != Verdict.DOWN))
        if check.last_run_at is not None:
            last_run.add_metric(labels[check.pk], check.last_run_at.timestamp())
    yield up
    yield last_run

    location_up = GaugeMetricFamily(
        "beacon_check_location_up",
        "1 while a location's own verdict on an enabled check is up or degraded, 0 while down.",
        labels=["check", "check_id", "location"],
    )
    enabled = {check.pk for check in checks if check.enabled}
    location_pairs = []
    for check_id, location, verdict in CheckLocationState.objects.order_by(
        "health_check_id", "location"
    ).values_list("health_check_id", "location", "verdict"):
        location_pairs.append((check_id, location))
        if check_id in enabled and verdict != Verdict.UNKNOWN:
            location_up.add_metric(
                [names[check_id], str(check_id), location], float(verdict != Verdict.DOWN)
            )
    yield location_up

    histogram = HistogramMetricFamily(
        "beacon_check_latency_seconds",
        "Response times of check runs, per check and location.",
        labels=["check", "check_id", "location"],
    )
    for (check_id, location), (buckets, total) in sorted(
        latency_histograms(location_pairs).items()
    ):
        if check_id in names:
            histogram.add_metric([names[check_id], str(check_id), location], buckets, total)
    yield histogram

    latency = GaugeMetricFamily(
        "beacon_check_latency_last_hour_seconds",
        "Response time quantiles over the last hour's results, per check and location.",
        labels=["check", "check_id", "location", "quantile"],
    )
    for (check_id, location), by_quantile in sorted(latency_quantiles(now=now).items()):
        if check_id not in names:
            continue  # created after the checks were read
        for quantile, latency_ms in by_quantile.items():
            if latency_ms is None:  # results without a latency (the connection failed)
                continue
            latency.add_metric(
                [names[check_id], str(check_id), location, quantile], latency_ms / 1000
            )
    yield latency


# Notifications


def notification_metrics():
    counts = {
        (channel, state): n
        for channel, state, n in Delivery.objects.order_by()
        .values("channel", "state")
        .annotate(n=Count("pk"))
        .values_list("channel", "state", "n")
    }
    queued = GaugeMetricFamily(
        "beacon_notifications_queued",
        "Deliveries waiting to be sent (including those waiting to be retried).",
        labels=["channel"],
    )
    done = GaugeMetricFamily(
        "beacon_notification_deliveries",
        "Deliveries in the ledger that were sent, or failed for good. Unsubscribing deletes a "
        "subscriber's deliveries, so this can go down: a gauge, not a counter.",
        labels=["channel", "state"],
    )
    for channel in Channel.values:
        queued.add_metric([channel], counts.get((channel, DeliveryState.QUEUED), 0))
        for state in (DeliveryState.SENT, DeliveryState.FAILED):
            done.add_metric([channel, state], counts.get((channel, state), 0))
    yield queued
    yield done


# Celery queues


def queue_names(checks: list[HealthCheck]) -> list[str]:
    names = dict.fromkeys(QUEUES)
    for check in checks:
        for location in check_locations(check):
            names[queue_for(location)] = None
    return list(names)


def queue_depths(queues: list[str]) -> dict[str, int]:
    """Messages waiting in each queue of the configured broker (Redis or file system).

    Raises when the broker cannot be read or is of another kind.
    """
    url = settings.CELERY_BROKER_URL
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    if url.startswith(("redis://", "rediss://", "unix://")):
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=BROKER_TIMEOUT_SECONDS,
            socket_timeout=BROKER_TIMEOUT_SECONDS,
        )
        return _redis_depths(client, options, queues)
    if url.startswith("sentinel://"):
        master = redis_sentinel.broker_master(url, options, timeout=BROKER_TIMEOUT_SECONDS)
        return _redis_depths(master, options, queues)
    if url.startswith("filesystem://"):
        return _folder_depths(options["data_folder_in"], queues)
    raise ValueError(f"queue depth is not read from {url.split(':', 1)[0]} brokers")


def _redis_depths(client: redis.Redis, options: dict, queues: list[str]) -> dict[str, int]:
    """kombu keeps a queue as a Redis list named after it, plus one list per priority step
    above 0 ("<queue>\\x06\\x16<step>"), all under the transport's global key prefix."""
    prefix = options.get("global_keyprefix", "")
    steps = [step for step in options.get("priority_steps", kombu_redis.PRIORITY_STEPS) if step]
    try:
        pipe = client.pipeline(transaction=False)
        for queue in queues:
            for key in [queue, *(f"{queue}{kombu_redis.Channel.sep}{step}" for step in steps)]:
                pipe.llen(f"{prefix}{key}")
        lengths = iter(pipe.execute())
        return {queue: sum(next(lengths) for _ in range(1 + len(steps))) for queue in queues}
    finally:
        client.close()


def _folder_depths(folder: str, queues: list[str]) -> dict[str, int]:
    """kombu's file-system transport writes a message as "<time>_<uuid>.<queue>.msg"."""
    wanted = {f"{queue}.msg": queue for queue in queues}
    depths = dict.fromkeys(queues, 0)
    with os.scandir(folder) as entries:
        for entry in entries:
            queue = wanted.get(entry.name.partition(".")[2])
            if queue is not None:
                depths[queue] += 1
    return depths


def queue_metrics(queues: list[str]):
    reachable = GaugeMetricFamily(
        "beacon_queue_depth_up", "1 when the broker's queue lengths could be read, else 0."
    )
    try:
        depths = queue_depths(queues)
    except Exception as exc:
        logger.warning("Metrics: queue depths not read from the broker: %s", exc)
        reachable.add_metric([], 0)
        yield reachable
        return
    reachable.add_metric([], 1)
    yield reachable
    depth = GaugeMetricFamily(
        "beacon_queue_depth", "Messages waiting in a Celery queue.", labels=["queue"]
    )
    for queue, n in depths.items():
        depth.add_metric([queue], n)
    yield depth


# The view


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for entry in settings.BEACON_METRICS_ALLOWED_IPS:
        if not entry.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS: {entry!r} is not an IP") from exc
    return networks


def ip_allowed(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _allowed_networks())


def _unauthorized(error: str = "") -> HttpResponse:
    challenge = 'Bearer realm="metrics"' + (f', error="{error}"' if error else "")
    return HttpResponse(
        "A valid bearer token is required.\n",
        status=401,
        content_type="text/plain",
        headers={"WWW-Authenticate": challenge},
    )


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """The scrape. A bearer token that is sent must be right; without one, the client's
    address must be in METRICS_ALLOWED_IPS."""
    token = settings.BEACON_METRICS_TOKEN
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer":
        if not hmac.compare_digest(credentials.strip().encode(), token.encode()):
            return _unauthorized("invalid_token")
    elif not ip_allowed(client_ip(request)):
        if token:
            return _unauthorized()
        return HttpResponse("Forbidden.\n", status=403, content_type="text/plain")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BeaconCollector())
    response = HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response

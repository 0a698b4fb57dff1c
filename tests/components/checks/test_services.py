"""Checks against a real HTTP server: results recorded, components moved, people respected."""

import pytest
from werkzeug import Response

from components.checks.services import (
    check_results_prune,
    check_run_now,
    checks_claim_due,
    component_follow_checks,
)
from components.models import Automation, CheckResult, ComponentStatus, Verdict
from components.services import component_set_status
from tests.components.factories import ComponentFactory, HealthCheckFactory
from tests.incidents.factories import open_incident


@pytest.fixture(autouse=True)
def allow_local_targets(settings):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True


@pytest.fixture
def api(page):
    return ComponentFactory(name="API")


def run(check, times=1):
    outcomes = [check_run_now(check=check) for _ in range(times)]
    check.refresh_from_db()
    check.component.refresh_from_db()
    return outcomes[-1]


def test_three_failures_take_the_component_down_and_two_successes_bring_it_back(api, httpserver):
    check = HealthCheckFactory(component=api, url=httpserver.url_for("/health"))
    httpserver.expect_request("/health").respond_with_data("boom", status=503)

    run(check, times=2)
    assert check.verdict == Verdict.UNKNOWN and api.status == ComponentStatus.OPERATIONAL
    outcome = run(check)
    assert outcome.error == "Status 503, expected 200–399"
    assert check.verdict == Verdict.DOWN
    assert check.component.status == ComponentStatus.MAJOR_OUTAGE
    change = check.component.status_changes.get()
    assert change.cause == "health_check"
    assert change.note.startswith(f"{check.name}: Status 503, expected 200–399 · HTTP 503 · ")

    httpserver.clear()
    httpserver.expect_request("/health").respond_with_data("ok")
    run(check)
    assert check.component.status == ComponentStatus.MAJOR_OUTAGE
    run(check)
    assert check.component.status == ComponentStatus.OPERATIONAL
    assert CheckResult.objects.filter(health_check=check).count() == 5


def test_a_slow_answer_is_degraded_performance(api, httpserver):
    check = HealthCheckFactory(
        component=api,
        url=httpserver.url_for("/slow"),
        degraded_latency_ms=50,
        failures_before_down=1,
    )

    def slow(request):
        import time

        time.sleep(0.2)
        return Response("ok")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    outcome = run(check)
    assert outcome.verdict == Verdict.DEGRADED and outcome.latency_ms >= 200
    assert check.component.status == ComponentStatus.DEGRADED_PERFORMANCE


def test_checks_do_not_override_staff_or_an_open_incident(api, httpserver):
    check = HealthCheckFactory(
        component=api, url=httpserver.url_for("/health"), failures_before_down=1
    )
    httpserver.expect_request("/health").respond_with_data("ok")
    component_set_status(component=api, status=ComponentStatus.PARTIAL_OUTAGE)
    run(check)
    assert check.verdict == Verdict.UP
    assert check.component.status == ComponentStatus.PARTIAL_OUTAGE  # staff's word stands

    component_set_status(component=api, status=ComponentStatus.OPERATIONAL)
    open_incident(name="Investigating", component_statuses={api: ComponentStatus.OPERATIONAL})
    httpserver.clear()
    httpserver.expect_request("/health").respond_with_data("no", status=500)
    run(check)
    assert check.verdict == Verdict.DOWN
    assert check.component.status == ComponentStatus.OPERATIONAL  # the incident holds it


def test_a_manual_component_is_never_moved(api, httpserver):
    api.automation = Automation.MANUAL
    api.save()
    check = HealthCheckFactory(component=api, url=httpserver.url_for("/x"), failures_before_down=1)
    httpserver.expect_request("/x").respond_with_data("no", status=500)
    run(check)
    assert check.verdict == Verdict.DOWN and check.component.status == "operational"
    assert component_follow_checks(component_id=api.pk) is None


def test_private_targets_are_refused_unless_allowed(api, httpserver, settings):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = False
    check = HealthCheckFactory(component=api, url=httpserver.url_for("/health"))
    outcome = run(check)
    assert outcome.verdict == Verdict.DOWN
    assert "127.0.0.1 is a private, loopback or reserved address" in outcome.error
    assert len(httpserver.log) == 0

    metadata = HealthCheckFactory(component=api, url="http://169.254.169.254/latest/")
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True
    assert "cloud metadata" in run(metadata).error


def test_a_due_check_is_handed_out_once_per_slot(api):
    from django.utils import timezone

    check = HealthCheckFactory(component=api, interval=30, locations=["eu", "us"])
    now = timezone.now()
    batches = checks_claim_due(now=now)
    assert sorted(b.location for b in batches) == ["eu", "us"]
    assert checks_claim_due(now=now) == []
    check.refresh_from_db()
    assert 0 < (check.next_run_at - now).total_seconds() <= 30


def test_old_results_are_pruned(api, httpserver):
    from datetime import timedelta

    from django.utils import timezone

    check = HealthCheckFactory(component=api, url=httpserver.url_for("/h"))
    httpserver.expect_request("/h").respond_with_data("ok")
    run(check, times=3)
    CheckResult.objects.filter(pk__in=CheckResult.objects.values("pk")[:2]).update(
        at=timezone.now() - timedelta(days=15)
    )
    assert check_results_prune(batch=1) == 2
    assert CheckResult.objects.count() == 1


def test_disabling_the_failing_check_lets_the_component_recover(api, httpserver):
    from components.checks.services import check_save

    check = HealthCheckFactory(
        component=api, url=httpserver.url_for("/health"), failures_before_down=1
    )
    httpserver.expect_request("/health").respond_with_data("no", status=500)
    run(check)
    assert check.component.status == ComponentStatus.MAJOR_OUTAGE

    check.enabled = False
    check_save(check=check, changed=["enabled"])
    api.refresh_from_db()
    assert api.status == ComponentStatus.OPERATIONAL
    assert api.status_changes.first().cause == "health_check"


def test_pointing_a_check_elsewhere_starts_its_verdict_over(api, httpserver):
    from components.checks.services import check_delete, check_save

    check = HealthCheckFactory(
        component=api, url=httpserver.url_for("/health"), failures_before_down=1
    )
    httpserver.expect_request("/health").respond_with_data("no", status=500)
    run(check)
    check.url = httpserver.url_for("/other")
    check_save(check=check, changed=["url"])
    check.refresh_from_db()
    assert check.verdict == Verdict.UNKNOWN
    assert not check.location_states.exists()

    check_delete(check=check)
    api.refresh_from_db()
    assert api.status == ComponentStatus.OPERATIONAL


def test_a_silent_heartbeat_is_looked_for_more_often_than_it_pings(api):
    from django.utils import timezone

    check = HealthCheckFactory(component=api, kind="heartbeat", url="", interval=3600)
    now = timezone.now()
    checks_claim_due(now=now)
    check.refresh_from_db()
    assert (check.next_run_at - now).total_seconds() <= 30


def test_each_result_is_dated_when_its_own_run_started_not_when_the_batch_ended(api):
    import threading
    from datetime import timedelta

    from django.utils import timezone
    from pytest_httpserver import HTTPServer

    from components.tasks import run_checks

    server = HTTPServer(threaded=True)  # a slow answer must not hold up the others
    server.start()
    release = threading.Event()

    def after(seconds):
        def handler(request):
            release.wait(seconds)
            return Response("ok")

        return handler

    try:
        for path, seconds in [("/slow", 1.2), ("/quick", 0), ("/medium", 0.4)]:
            server.expect_request(path).respond_with_handler(after(seconds))
        checks = [
            HealthCheckFactory(component=api, name=path, url=server.url_for(path), timeout=5)
            for path in ("/slow", "/quick", "/medium")
        ]
        start = timezone.now() + timedelta(seconds=0.3)
        slots = [start, start + timedelta(seconds=0.3), start + timedelta(seconds=0.6)]
        run_checks.run(
            "default", [(c.pk, slot.isoformat()) for c, slot in zip(checks, slots, strict=True)]
        )
        batch_end = timezone.now()
    finally:
        release.set()
        server.clear()
        server.stop()

    dated = {r.health_check_id: r.at for r in CheckResult.objects.all()}
    stamps = [dated[c.pk] for c in checks]
    # Each at its own slot (where its run started), in the order they started...
    for stamp, slot in zip(stamps, slots, strict=True):
        assert timedelta(0) <= stamp - slot < timedelta(seconds=0.25)
    assert stamps == sorted(stamps)
    # ...not all at the end of the batch, which the slow one held up.
    assert batch_end - stamps[1] > timedelta(seconds=0.5)
    for check, stamp in zip(checks, stamps, strict=True):
        check.refresh_from_db()
        assert check.last_run_at == stamp


def test_checks_created_together_are_spread_over_their_interval(api):
    from collections import Counter
    from datetime import timedelta

    from django.utils import timezone

    from components.models import HealthCheck

    start = timezone.now().replace(microsecond=0)
    checks = HealthCheckFactory.create_batch(120, component=api, interval=60)
    HealthCheck.objects.update(next_run_at=start)  # all made by one apply_config, say

    runs = Counter()
    for second in range(0, 181):
        for batch in checks_claim_due(now=start + timedelta(seconds=second)):
            runs[second] += len(batch.runs)

    assert runs[0] == 120  # a new check runs at once
    later = [runs[second] for second in range(1, 181)]
    assert sum(later) == 3 * 120  # then once a minute each...
    assert max(later) <= 4  # ...about two a second, never all at once
    for check in checks:
        check.refresh_from_db()
    offsets = sorted((c.next_run_at - start).total_seconds() % 60 for c in checks)
    gaps = [b - a for a, b in zip(offsets, offsets[1:], strict=False)]
    assert max(gaps) < 1.5  # 0.5 s apart on average


def test_a_spread_check_keeps_its_interval_from_slot_to_slot(api):
    from datetime import timedelta

    from django.utils import timezone

    from components.checks.services import next_slot

    check = HealthCheckFactory(component=api, interval=45)
    now = timezone.now()
    first = next_slot(check, after=now)
    assert timedelta(0) < first - now <= timedelta(seconds=45)
    assert next_slot(check, after=first) - first == timedelta(seconds=45)
    assert next_slot(check, after=first - timedelta(microseconds=1)) == first
    # A worker back after a long pause skips the slots it missed, keeping its phase.
    assert next_slot(check, after=first + timedelta(hours=1, seconds=1)) == first + timedelta(
        hours=1, seconds=45
    )

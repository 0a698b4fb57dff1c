"""The worker's rebuilds paced while changes keep coming, and at once after a calm."""

import threading
import time

import pytest
from django.core.cache import cache

from components.services import component_set_status
from statuspage.public import public_cache
from statuspage.public.snapshots import build, keys
from statuspage.tasks import rebuild_snapshots
from tests.components.factories import ComponentFactory
from tests.statuspage.test_snapshots import unreachable_redis

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def api(page, settings):
    component = ComponentFactory(name="API")
    settings.BEACON_SNAPSHOT_RENDER_ON_WRITE = True  # from here on
    settings.BEACON_SNAPSHOT_REBUILD_DUTY = 0.2
    settings.BEACON_SNAPSHOT_REBUILD_MAX_GAP_SECONDS = 5
    return component


@pytest.fixture
def queued(monkeypatch):
    """What was sent to the broker for the rebuild task: the options of each send."""
    sent: list[dict] = []
    monkeypatch.setattr(
        "statuspage.tasks.rebuild_snapshots.apply_async",
        lambda *args, **options: sent.append(options),
    )
    return sent


def page_file(settings):
    return settings.BEACON_SNAPSHOT_DIR / "files" / "index.html"


def shows_outage(settings) -> bool:
    index = page_file(settings)
    return index.exists() and "Major outage" in index.read_text()


def test_the_gap_keeps_the_duty_and_is_bounded(settings):
    settings.BEACON_SNAPSHOT_REBUILD_DUTY = 0.2
    settings.BEACON_SNAPSHOT_REBUILD_MAX_GAP_SECONDS = 5
    assert keys.rebuild_gap(1.0) == pytest.approx(4.0)  # 1 s of 5: a fifth of the time
    assert keys.rebuild_gap(3.0) == 5
    settings.BEACON_SNAPSHOT_REBUILD_DUTY = 1
    assert keys.rebuild_gap(3.0) == 0


def test_a_rebuild_right_after_one_under_a_stream_of_changes_is_deferred(api, settings, queued):
    build.rebuild_hot_snapshots()
    keys.pace_rebuilds(render_seconds=0.5)  # as a rebuild that began while changes kept coming

    component_set_status(component=api, status="major_outage")
    assert queued == [{}]  # the change queued one rebuild
    cache.touch(keys.REBUILD_QUEUED_KEY, 1)  # a task picked up late: its mark about to expire
    rebuild_snapshots.apply()

    assert [set(options) for options in queued] == [set(), {"countdown"}]
    assert 1.5 < queued[1]["countdown"] <= 2.0  # 0.5 s x (1/0.2 - 1), less the time since
    assert not shows_outage(settings)  # nothing rebuilt by this call
    # The queued mark is held over the wait, so a change meanwhile joins the deferred rebuild.
    time.sleep(1.1)
    component_set_status(component=api, status="partial_outage")
    assert len(queued) == 2


def test_a_rebuild_after_a_calm_runs_at_once(api, settings, queued):
    settings.BEACON_SNAPSHOT_REBUILD_MAX_GAP_SECONDS = 0.2
    keys.pace_rebuilds(render_seconds=1.0)  # the gap of the last rebuild of a stream …
    time.sleep(0.3)  # … and a calm longer than it

    component_set_status(component=api, status="major_outage")
    rebuild_snapshots.apply()

    assert queued == [{}]  # the change's own; nothing queued again
    assert shows_outage(settings)
    # The mark is released as the rebuild starts: the next change queues the next rebuild.
    component_set_status(component=api, status="operational")
    assert queued == [{}, {}]


def changes_every(seconds: float, stop: threading.Event) -> None:
    while not stop.wait(seconds):
        public_cache.invalidate()


def test_only_a_rebuild_that_began_while_changes_kept_coming_paces_the_next(api, settings):
    settings.BEACON_SNAPSHOT_SETTLE_SECONDS = 0.1  # a wait of at most 0.5 s to settle

    component_set_status(component=api, status="major_outage")
    build.rebuild_hot_snapshots()  # one change, then still: settled
    assert keys.seconds_until_rebuild() == 0

    stop = threading.Event()
    stream = threading.Thread(target=changes_every, args=(0.02, stop))
    stream.start()
    try:
        time.sleep(0.05)  # the worker picks up a rebuild queued by a change just made
        started = time.monotonic()
        build.rebuild_hot_snapshots()
        took = time.monotonic() - started
    finally:
        stop.set()
        stream.join()
    # Its render time (at most `took`, less the wait to settle) four times over, at most 5 s.
    assert 0 < keys.seconds_until_rebuild() <= min(5, 4 * took)


def test_with_the_cache_away_the_rebuild_runs_at_once(api, settings, queued):
    keys.pace_rebuilds(render_seconds=1.0)
    component_set_status(component=api, status="major_outage")
    settings.CACHES = {"default": unreachable_redis()}

    assert keys.seconds_until_rebuild() == 0
    rebuild_snapshots.apply()
    assert queued == [{}]
    assert shows_outage(settings)


def test_a_rebuild_that_cannot_be_queued_again_runs_at_once(api, settings, monkeypatch):
    def broker_away(*args, **options):
        raise ConnectionError("Error 111 connecting to the broker")

    keys.pace_rebuilds(render_seconds=1.0)
    component_set_status(component=api, status="major_outage")  # its queueing fails, logged
    monkeypatch.setattr("statuspage.tasks.rebuild_snapshots.apply_async", broker_away)

    rebuild_snapshots.apply()
    assert shows_outage(settings)


def test_a_real_worker_defers_under_pacing_then_rebuilds(api, settings, worker):
    settings.BEACON_SNAPSHOT_REBUILD_DUTY = 0.5
    keys.pace_rebuilds(render_seconds=1.5)  # the next rebuild 1.5 s from now
    paced_until = time.monotonic() + 1.5

    component_set_status(component=api, status="major_outage")
    while time.monotonic() < paced_until - 0.2:
        assert not shows_outage(settings), "rebuilt before the pacing allowed"
        time.sleep(0.05)
    while not shows_outage(settings):
        assert time.monotonic() < paced_until + 10, "the deferred rebuild never ran"
        time.sleep(0.05)

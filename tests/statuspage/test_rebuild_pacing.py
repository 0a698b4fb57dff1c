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

    def send(args=None, kwargs=None, **options):
        sent.append({**({"kwargs": kwargs} if kwargs else {}), **options})

    monkeypatch.setattr("statuspage.tasks.rebuild_snapshots.apply_async", send)
    return sent


# How a rebuild queued again by the pacing is sent.
DEFERRED = {"kwargs": {"deferred": True}, "countdown": keys.REBUILD_RECHECK_SECONDS}


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


def test_a_rebuild_while_changes_keep_coming_right_after_one_is_deferred(api, settings, queued):
    build.rebuild_hot_snapshots()
    keys.pace_rebuilds(render_seconds=0.5)  # as a rebuild that began while changes kept coming
    settings.BEACON_SNAPSHOT_SETTLE_SECONDS = 10  # and they still do: no change settles here

    component_set_status(component=api, status="major_outage")
    assert queued == [{}]  # the change queued one rebuild
    cache.touch(keys.REBUILD_QUEUED_KEY, 1)  # a task picked up late: its mark about to expire
    rebuild_snapshots.apply()

    # 0.5 s x (1/0.2 - 1) = 2 s to wait; it looks again in a second, without sleeping.
    assert queued == [{}, DEFERRED]
    assert 1.5 < keys.seconds_until_rebuild() <= 2.0
    assert not shows_outage(settings)  # nothing rebuilt by this call
    # The queued mark is held over the wait, so a change meanwhile joins the deferred rebuild.
    time.sleep(1.1)
    component_set_status(component=api, status="partial_outage")
    assert len(queued) == 2


def test_tasks_that_come_while_a_deferral_waits_leave_the_rebuild_to_it(api, settings, queued):
    """One chain of deferred rebuilds, however many tasks the writes queued meanwhile."""
    keys.pace_rebuilds(render_seconds=1.0)
    settings.BEACON_SNAPSHOT_SETTLE_SECONDS = 10  # the changes keep coming
    component_set_status(component=api, status="major_outage")
    rebuild_snapshots.apply()  # deferred: queued again
    rebuild_snapshots.apply()  # another task, from a write while the first waited
    assert queued == [{}, DEFERRED]
    assert not shows_outage(settings)
    rebuild_snapshots.apply(kwargs={"deferred": True})  # the deferred one runs: again
    assert queued == [{}, DEFERRED, DEFERRED]


def test_a_deferred_rebuild_runs_once_the_changes_stop(api, settings, queued):
    keys.pace_rebuilds(render_seconds=1.0)  # 4 s to wait while changes keep coming
    settings.BEACON_SNAPSHOT_SETTLE_SECONDS = 0.1

    component_set_status(component=api, status="major_outage")
    time.sleep(0.15)  # the last change of the stream: still since
    assert keys.seconds_until_rebuild() > 3
    rebuild_snapshots.apply()

    assert queued == [{}]  # rebuilt, not queued again
    assert shows_outage(settings)
    assert cache.get(keys.REBUILD_NOT_BEFORE_KEY) is None  # the next stream waits afresh


def calm_rebuild_meeting_a_stream(api, monkeypatch) -> int | None:
    """A rebuild begun after a calm (the worker's, paced), during which a stream of changes
    begins as it starts rendering; what it returns."""
    component_set_status(component=api, status="major_outage")
    time.sleep(0.15)  # settled: this rebuild is a calm one
    stop = threading.Event()
    streams: list[threading.Thread] = []
    hot_keys = keys.public_keys

    def hot_then_a_stream(*args, **kwargs):
        hot = hot_keys(*args, **kwargs)
        streams.append(start_stream_of_changes(stop))
        return hot

    monkeypatch.setattr(keys, "public_keys", hot_then_a_stream)
    keys.rebuild_started()  # as the task does: the next change may queue a rebuild
    try:
        return build.rebuild_hot_snapshots(paced=True)
    finally:
        stop.set()
        for stream in streams:
            stream.join()


def test_a_rebuild_begun_after_a_calm_hands_over_when_a_stream_begins(
    api, settings, queued, monkeypatch
):
    settings.BEACON_SNAPSHOT_SETTLE_SECONDS = 0.1
    keys.note_rebuild_completed()  # the worker finished one a moment ago
    assert calm_rebuild_meeting_a_stream(api, monkeypatch) is None  # it stopped early …
    assert queued == [{}, {}]  # … and queued the stream's own rebuild


def test_a_calm_rebuild_hands_over_only_while_the_last_finished_one_is_recent(
    api, settings, queued, monkeypatch
):
    """A pair of quick writes now and then cannot keep the worker from finishing a rebuild."""
    settings.BEACON_SNAPSHOT_SETTLE_SECONDS = 0.1
    cache.delete(keys.REBUILD_COMPLETED_KEY)  # none finished in the last gap
    hot = keys.public_keys()
    built = calm_rebuild_meeting_a_stream(api, monkeypatch)
    assert built is not None and built >= len(hot) / 2  # it rendered on


def test_a_task_the_pacing_queued_again_does_not_begin_pacing_anew(api, settings, queued):
    """However late a busy queue runs it: it rebuilds, rather than wait another gap."""
    settings.BEACON_SNAPSHOT_SETTLE_SECONDS = 0.1
    stop = threading.Event()
    stream = start_stream_of_changes(stop)
    try:
        component_set_status(component=api, status="major_outage")
        rebuild_snapshots.apply(kwargs={"deferred": True})  # no pacing recorded: it ran late
        assert shows_outage(settings)
    finally:
        stop.set()
        stream.join()


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


def start_stream_of_changes(stop: threading.Event) -> threading.Thread:
    """Changes every 20 ms, from a thread, until `stop`; returns once they are coming."""
    before = public_cache.generation()
    stream = threading.Thread(target=changes_every, args=(0.02, stop))
    stream.start()
    while public_cache.generation() == before:
        time.sleep(0.01)
    return stream


def test_only_a_rebuild_that_began_while_changes_kept_coming_paces_the_next(api, settings, queued):
    # A wait of at most 2.5 s to settle: changes every 20 ms keep it from settling even on a
    # machine so busy that the thread making them is held up for a few tenths of a second.
    settings.BEACON_SNAPSHOT_SETTLE_SECONDS = 0.5

    component_set_status(component=api, status="major_outage")
    build.rebuild_hot_snapshots()  # one change, then still: settled
    assert keys.seconds_until_rebuild() == 0

    stop = threading.Event()
    stream = start_stream_of_changes(stop)
    try:
        started = time.monotonic()
        build.rebuild_hot_snapshots()
        took = time.monotonic() - started
    finally:
        stop.set()
        stream.join()
    # Its render time (at most `took`, less the wait to settle) four times over, at most 5 s.
    assert 0 < keys.seconds_until_rebuild() <= min(5, 4 * took)


def test_a_streams_first_rebuild_waits_too_and_follows_its_end(api, settings, queued):
    """A burst of writes is not met with a full rebuild at its start and another at its end."""
    settings.BEACON_SNAPSHOT_SETTLE_SECONDS = 0.1  # a wait of at most 0.5 s to settle
    stop = threading.Event()
    stream = start_stream_of_changes(stop)
    try:
        component_set_status(component=api, status="major_outage")
        rebuild_snapshots.apply()  # the changes do not settle while it waits

        assert queued == [{}, DEFERRED]
        assert not shows_outage(settings)  # nothing built
        assert 4.0 < keys.seconds_until_rebuild() <= 5.0  # the longest gap (the fixture's)
    finally:
        stop.set()
        stream.join()
    time.sleep(0.15)  # the stream's last change has settled
    rebuild_snapshots.apply()
    assert shows_outage(settings)
    assert len(queued) == 2  # built, not queued again


def test_with_the_cache_away_the_rebuild_runs_at_once(api, settings, queued):
    keys.pace_rebuilds(render_seconds=1.0)
    component_set_status(component=api, status="major_outage")
    settings.CACHES = {"default": unreachable_redis()}

    assert keys.seconds_until_rebuild() == 0
    rebuild_snapshots.apply()
    assert queued == [{}]
    assert shows_outage(settings)


def test_a_rebuild_that_cannot_be_queued_again_runs_at_once(api, settings, monkeypatch):
    tried: list[dict] = []

    def broker_away(*args, **options):
        tried.append(options)
        raise ConnectionError("Error 111 connecting to the broker")

    keys.pace_rebuilds(render_seconds=1.0)
    # The change just made has not settled when the task starts, even on a busy machine
    # (the task then waits for it to, 2 s, and renders).
    settings.BEACON_SNAPSHOT_SETTLE_SECONDS = 2
    monkeypatch.setattr("statuspage.tasks.rebuild_snapshots.apply_async", broker_away)
    component_set_status(component=api, status="major_outage")  # its queueing fails, logged

    rebuild_snapshots.apply()
    assert tried[-1] == {"countdown": keys.REBUILD_RECHECK_SECONDS}  # it tried to defer …
    assert shows_outage(settings)  # … and rebuilt when it could not


def test_a_real_worker_waits_while_changes_keep_coming_and_rebuilds_once_they_stop(
    api, settings, worker
):
    settings.BEACON_SNAPSHOT_SETTLE_SECONDS = 0.2
    settings.BEACON_SNAPSHOT_REBUILD_MAX_GAP_SECONDS = 15
    keys.pace_rebuilds(render_seconds=10)  # the next rebuild 15 s from now at the earliest …
    stop = threading.Event()
    stream = start_stream_of_changes(stop)
    try:
        component_set_status(component=api, status="major_outage")
        streaming_until = time.monotonic() + 2
        while time.monotonic() < streaming_until:
            assert not shows_outage(settings), "rebuilt while the changes kept coming"
            time.sleep(0.05)
    finally:
        stop.set()
        stream.join()
    stopped = time.monotonic()
    # … unless the changes stop: then the rebuild that was deferred runs within a second or so.
    while not shows_outage(settings):
        assert time.monotonic() - stopped < 10, "the deferred rebuild did not run"
        time.sleep(0.05)

"""What a standby region's web host does with what its replica tells it (standby.py).

The whole runbook runs against a real primary and standby in test_standby_region.py; here,
the rules on the test database, with the roles a probe can find.
"""

import logging
import time

import pytest
from django.core.cache import cache

from statuspage.models import PublicChange
from statuspage.public import public_cache
from statuspage.public.snapshots import outage, standby, store

pytestmark = pytest.mark.django_db

STREAMING = standby.DatabaseRole(standby=True, streaming=True, replayed_at=None)


def _replicate(generation: str) -> None:
    PublicChange.objects.update_or_create(pk=1, defaults={"generation": generation})


@pytest.mark.django_db(transaction=True)  # the probe closes its connection when done
def test_the_test_database_is_a_primary_and_the_probe_says_so():
    assert standby.database_role() == standby.PRIMARY
    outage.probe_database_now()
    assert store.memory().on_standby is False
    assert store.refresh_failing_since() is None


def test_a_standby_adopts_the_primarys_last_change_once():
    token = f"{time.time_ns() - 5_000_000_000}-0a1b2c3d"
    _replicate(token)
    standby.follow_primary(STREAMING)
    assert public_cache.generation() == token
    assert public_cache.changed_at(token) < time.time() - 4  # the primary's time, not ours
    assert cache.get(standby.PRIMARY_SEEN_KEY) == pytest.approx(time.time(), abs=5)


@pytest.mark.parametrize(
    "hostile",
    ["not-a-generation", "1" * 25 + "-ab", "123", "123-", "123-XYZ", "123-ab\n", "\x7f", " 1-a"],
)
def test_a_replicated_value_that_is_no_generation_is_ignored(hostile, caplog):
    before = public_cache.generation()
    _replicate(hostile)
    with caplog.at_level(logging.WARNING, logger="beacon.snapshots"):
        standby.follow_primary(STREAMING)
    assert public_cache.generation() == before
    assert "not a generation" in caplog.text


def test_a_primary_that_never_noted_a_change_changes_nothing():
    before = public_cache.generation()
    _replicate("")
    standby.follow_primary(STREAMING)
    assert public_cache.generation() == before


def test_a_lost_primary_is_shown_as_of_the_later_of_last_seen_and_last_replayed():
    lost = standby.DatabaseRole(standby=True, streaming=False, replayed_at=1_000.0)
    assert lost.lost_primary
    cache.set(standby.PRIMARY_SEEN_KEY, 2_000.0, None)
    assert standby.shown_as_of(lost) == 2_000.0
    cache.set(standby.PRIMARY_SEEN_KEY, 500.0, None)
    assert standby.shown_as_of(lost) == 1_000.0
    # A host that started after the primary was lost, in a region whose Redis never saw it.
    cache.delete(standby.PRIMARY_SEEN_KEY)
    assert standby.shown_as_of(lost) == 1_000.0
    nothing_known = standby.DatabaseRole(standby=True, streaming=False, replayed_at=None)
    assert standby.shown_as_of(nothing_known) == pytest.approx(time.time(), abs=5)


def test_a_streaming_standby_and_a_primary_have_not_lost_anything():
    assert not STREAMING.lost_primary
    assert not standby.PRIMARY.lost_primary

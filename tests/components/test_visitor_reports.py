"""Counting visitor reports in the cache and persisting them (components.reports)."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from components.reports import selectors
from components.reports.models import ReportCount
from components.reports.services import (
    count_key,
    day_key,
    minute_of,
    report_counts_persist,
    report_record,
    visitor_digest,
)
from components.tasks import persist_report_counts
from statuspage.celery import app
from tests.components.factories import ComponentFactory

NOON = datetime(2026, 12, 5, 12, 0, 30, tzinfo=UTC)


def record(component_ids, *, symptom="", address="203.0.113.7", agent="Firefox", now=NOON):
    return report_record(
        component_ids=component_ids, symptom=symptom, address=address, user_agent=agent, now=now
    )


def rows():
    return {(r.component_id, r.symptom, r.minute, r.count) for r in ReportCount.objects.all()}


def test_the_folding_key_rotates_daily_and_depends_on_the_secret(settings):
    today, tomorrow = date(2026, 12, 5), date(2026, 12, 6)
    assert day_key(today) != day_key(tomorrow)
    one = visitor_digest(address="203.0.113.7", user_agent="Firefox", day=today)
    assert one == visitor_digest(address="203.0.113.7", user_agent="Firefox", day=today)
    assert one != visitor_digest(address="203.0.113.7", user_agent="Firefox", day=tomorrow)
    assert one != visitor_digest(address="203.0.113.7", user_agent="Chrome", day=today)
    assert one != visitor_digest(address="203.0.113.8", user_agent="Firefox", day=today)
    settings.SECRET_KEY = "another secret key, another installation"
    assert one != visitor_digest(address="203.0.113.7", user_agent="Firefox", day=today)


def test_the_same_visitor_is_counted_again_the_next_day(db):
    api = ComponentFactory()
    assert record([api.public_id]).counted == [api.public_id]
    assert record([api.public_id], now=NOON + timedelta(hours=1)).folded == [api.public_id]
    next_day = NOON + timedelta(days=1)
    assert record([api.public_id], now=next_day).counted == [api.public_id]
    report_counts_persist(now=next_day, minutes=25 * 60)
    assert sorted(r[3] for r in rows()) == [1, 1]


def test_persisting_twice_adds_nothing_twice(db):
    api = ComponentFactory()
    record([api.public_id, "other"], symptom="errors")
    record([api.public_id], address="198.51.100.1", symptom="errors")
    record([api.public_id], address="198.51.100.2", now=NOON + timedelta(minutes=1))
    later = NOON + timedelta(minutes=2)
    assert report_counts_persist(now=later) == 3
    first = rows()
    assert report_counts_persist(now=later) == 3
    assert rows() == first
    minute = NOON.replace(second=0)
    assert first == {
        (api.pk, "errors", minute, 2),
        (None, "errors", minute, 1),
        (api.pk, "", minute + timedelta(minutes=1), 1),
    }
    # A report arriving in a minute already persisted corrects its row, it does not double it.
    record([api.public_id], address="198.51.100.3", symptom="errors")
    report_counts_persist(now=later)
    assert ReportCount.objects.get(component=api, symptom="errors").count == 3
    assert ReportCount.objects.count() == 3


def test_the_selector_returns_counts_in_a_time_range(db):
    api, chat = ComponentFactory(), ComponentFactory()
    record([api.public_id], symptom="slow")
    record([chat.public_id], address="198.51.100.1")
    record(["other"], address="198.51.100.2", now=NOON + timedelta(minutes=5))
    report_counts_persist(now=NOON + timedelta(minutes=6))
    minute = NOON.replace(second=0)
    tallies = selectors.report_counts(start=minute, end=minute + timedelta(minutes=1))
    assert {(t.component_id, t.symptom, t.count) for t in tallies} == {
        (api.pk, "slow", 1),
        (chat.pk, "", 1),
    }
    only_api = selectors.report_counts(
        start=minute, end=minute + timedelta(hours=1), component_ids=[api.pk]
    )
    assert [(t.component_id, t.minute) for t in only_api] == [(api.pk, minute)]
    totals = selectors.report_totals(start=minute, end=minute + timedelta(hours=1))
    assert totals == {api.pk: 1, chat.pk: 1, None: 1}


def test_a_persisted_row_holds_no_personal_data(db):
    api = ComponentFactory()
    record([api.public_id], address="203.0.113.99", agent="UniqueAgent/1.0")
    report_counts_persist(now=NOON)
    (row,) = ReportCount.objects.values()
    assert set(row) == {"id", "component_id", "component_key", "symptom", "minute", "count"}
    assert "203.0.113.99" not in str(row) and "UniqueAgent" not in str(row)


@pytest.mark.parametrize("symptom", ["", "sign_in", "crashes"])
def test_each_symptom_is_kept_apart(db, symptom):
    record(["other"], symptom=symptom)
    report_counts_persist(now=NOON)
    assert ReportCount.objects.get().symptom == symptom


def test_the_beat_runs_the_persisting_task_every_minute(db):
    entry = app.conf.beat_schedule["persist-report-counts"]
    assert (entry["task"], entry["schedule"]) == ("components.tasks.persist_report_counts", 60.0)
    now = timezone.now()
    record(["other"], symptom="slow", now=now)
    assert cache.get(count_key(minute_of(now), "other", "slow")) == 1
    persist_report_counts()
    assert ReportCount.objects.get().count == 1

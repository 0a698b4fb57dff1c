"""The monthly SLA arithmetic, with every expected value worked out by hand.

The rows come through the real pipe where it matters: status changes recorded with
component_set_status, then roll_up_uptime with a frozen clock, then the report.
The weights are the documented defaults (docs/sla.md), set here so the sums below hold:
major outage 1.0, partial outage 0.3, degraded performance 0.
"""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError

from components.models import ComponentStatus, DailyUptime
from components.services import component_set_status, components_backdate, roll_up_uptime
from components.sla import (
    NO_TERMS,
    SlaTerms,
    component_terms,
    group_terms,
    month_bounds,
    month_figures,
    month_uptime,
)
from components.sla_terms import CreditTier, credit_for, credit_tiers, parse_month
from components.uptime import DayUptime
from tests.components.factories import ComponentFactory, ComponentGroupFactory

BERLIN = ZoneInfo("Europe/Berlin")
TIERS = [
    CreditTier(Decimal("99.9"), Decimal(10)),
    CreditTier(Decimal(99), Decimal(25)),
    CreditTier(Decimal(95), Decimal(100)),
]
TERMS = SlaTerms(target=Decimal("99.9"), tiers=TIERS)


@pytest.fixture(autouse=True)
def weights(settings):
    settings.BEACON_UPTIME_WEIGHTS = {
        "major_outage": 1.0,
        "partial_outage": 0.3,
        "degraded_performance": 0.0,
    }


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def history(component, since, changes, until):
    """Replay a component's history through the services, the clock frozen after it."""
    with time_machine.travel(until + timedelta(days=1), tick=False):
        components_backdate(components=[component], since=since)
        for at, status in changes:
            component_set_status(component=component, status=status, at=at)
        roll_up_uptime(until=until)
    component.refresh_from_db()


def report(components, month, *, now, zone=UTC, terms=TERMS):
    return month_uptime(components=components, terms=terms, month=month, now=now, zone=zone)


def test_a_thirty_day_month_with_a_partial_and_a_major_outage(page):
    # June 2026: 30 days = 43,200 counted minutes.
    # Weighted downtime = 90 min partial x 0.3 + 30 min major x 1.0 = 27 + 30 = 57 minutes.
    # Uptime = 100 x (1 - 57 / 43,200) = 99.868055… %: below 99.9 (breached, 10 % credit),
    # not below 99.
    component = ComponentFactory()
    history(
        component,
        utc(2026, 6, 1),
        [
            (utc(2026, 6, 10, 12), ComponentStatus.PARTIAL_OUTAGE),
            (utc(2026, 6, 10, 13, 30), ComponentStatus.OPERATIONAL),
            (utc(2026, 6, 20, 8), ComponentStatus.MAJOR_OUTAGE),
            (utc(2026, 6, 20, 8, 30), ComponentStatus.OPERATIONAL),
        ],
        utc(2026, 7, 1),
    )
    month = report([component], "2026-06", now=utc(2026, 7, 3))
    figures = month.figures
    assert figures.counted_minutes == 43_200
    assert figures.minutes(ComponentStatus.PARTIAL_OUTAGE) == 90
    assert figures.minutes(ComponentStatus.MAJOR_OUTAGE) == 30
    assert figures.minutes(ComponentStatus.DEGRADED_PERFORMANCE) == 0
    assert figures.maintenance_minutes == 0
    assert figures.weighted_downtime == 57 * 60
    assert figures.uptime_percent == 100 * (1 - Decimal(57) / 43_200)
    assert round(figures.uptime_percent, 6) == Decimal("99.868056")
    assert month.breached
    assert month.credit == TIERS[0]
    assert not month.partial
    assert month.counted_from is None


def test_maintenance_across_midnight_is_split_over_two_days_and_not_counted(page):
    # May 2026: 31 days = 44,640 minutes. Maintenance 23:00 on the 14th to 02:00 on the 15th:
    # 60 minutes on the 14th, 120 on the 15th, 180 not counted: 44,460 counted minutes.
    # A 60-minute major outage: uptime = 100 x (1 - 60 / 44,460) = 99.865047… %.
    component = ComponentFactory()
    history(
        component,
        utc(2026, 5, 1),
        [
            (utc(2026, 5, 14, 23), ComponentStatus.UNDER_MAINTENANCE),
            (utc(2026, 5, 15, 2), ComponentStatus.OPERATIONAL),
            (utc(2026, 5, 20, 10), ComponentStatus.MAJOR_OUTAGE),
            (utc(2026, 5, 20, 11), ComponentStatus.OPERATIONAL),
        ],
        utc(2026, 6, 1),
    )
    rows = DailyUptime.objects.filter(
        component=component, day__in=[date(2026, 5, 14), date(2026, 5, 15)]
    )
    assert sorted(r.under_maintenance_seconds for r in rows) == [3600, 7200]
    month = report([component], "2026-05", now=utc(2026, 6, 2))
    assert month.figures.maintenance_minutes == 180
    assert month.figures.counted_minutes == 44_460
    assert round(month.figures.uptime_percent, 6) == Decimal("99.865047")
    assert month.credit == TIERS[0]


def test_march_in_berlin_has_743_hours(page):
    # The clocks go forward at 02:00 on 29 March 2026: 31 x 24 - 1 = 743 h = 44,580 minutes.
    # A major outage from 01:00 CET to 04:00 CEST lasts two real hours: 120 minutes.
    # Uptime = 100 x (1 - 120 / 44,580) = 99.730821… %: below 99.9, not below 99: 10 %.
    page.time_zone = "Europe/Berlin"
    page.save()
    component = ComponentFactory()
    history(
        component,
        datetime(2026, 3, 1, tzinfo=BERLIN),
        [
            (datetime(2026, 3, 29, 1, tzinfo=BERLIN), ComponentStatus.MAJOR_OUTAGE),
            (datetime(2026, 3, 29, 4, tzinfo=BERLIN), ComponentStatus.OPERATIONAL),
        ],
        datetime(2026, 4, 1, tzinfo=BERLIN),
    )
    day = DailyUptime.objects.get(component=component, day=date(2026, 3, 29))
    assert sum(day.seconds_by_status().values()) == 23 * 3600
    month = report([component], "2026-03", now=utc(2026, 4, 5), zone=BERLIN)
    assert month.figures.counted_minutes == 743 * 60
    assert month.figures.minutes(ComponentStatus.MAJOR_OUTAGE) == 120
    assert round(month.figures.uptime_percent, 6) == Decimal("99.730821")
    assert month.credit == TIERS[0]
    assert month.start == datetime(2026, 3, 1, tzinfo=BERLIN)
    assert month.end - month.start == timedelta(hours=743)


def test_october_in_berlin_has_745_hours(page):
    # The clocks go back at 03:00 on 25 October 2026: 31 x 24 + 1 = 745 h = 44,700 minutes.
    # A partial outage from 01:30 CEST to 02:30 CET lasts two real hours (the hour repeats):
    # weighted 120 x 0.3 = 36 minutes; uptime = 100 x (1 - 36 / 44,700) = 99.919463… %.
    page.time_zone = "Europe/Berlin"
    page.save()
    component = ComponentFactory()
    history(
        component,
        datetime(2026, 10, 1, tzinfo=BERLIN),
        [
            (utc(2026, 10, 24, 23, 30), ComponentStatus.PARTIAL_OUTAGE),  # 01:30 CEST
            (utc(2026, 10, 25, 1, 30), ComponentStatus.OPERATIONAL),  # 02:30 CET
        ],
        datetime(2026, 11, 1, tzinfo=BERLIN),
    )
    day = DailyUptime.objects.get(component=component, day=date(2026, 10, 25))
    assert sum(day.seconds_by_status().values()) == 25 * 3600
    month = report([component], "2026-10", now=utc(2026, 11, 5), zone=BERLIN)
    assert month.figures.counted_minutes == 745 * 60
    assert month.figures.minutes(ComponentStatus.PARTIAL_OUTAGE) == 120
    assert round(month.figures.uptime_percent, 6) == Decimal("99.919463")
    assert not month.breached
    assert month.credit is None


def test_a_month_with_no_data_is_neither_breached_nor_credited(page):
    component = ComponentFactory()
    history(component, utc(2026, 6, 1), [], utc(2026, 7, 1))
    month = report([component], "2025-01", now=utc(2026, 7, 3))
    assert month.figures.uptime_percent is None
    assert month.figures.counted_minutes == 0
    assert not month.has_data
    assert not month.breached
    assert month.credit is None


def test_a_component_created_mid_month_counts_from_its_first_day(page):
    # From 16 June 00:00: 15 days = 21,600 minutes, all operational.
    component = ComponentFactory()
    history(component, utc(2026, 6, 16), [], utc(2026, 7, 1))
    month = report([component], "2026-06", now=utc(2026, 7, 3))
    assert month.counted_from == date(2026, 6, 16)
    assert month.figures.counted_minutes == 15 * 1440
    assert month.figures.uptime_percent == 100


def test_the_current_month_counts_up_to_now_and_is_partial(page):
    # Backdated to 1 June, never rolled up: the live part up to 15 June 12:00 is 14.5 days.
    component = ComponentFactory()
    with time_machine.travel(utc(2026, 6, 15, 12), tick=False):
        components_backdate(components=[component], since=utc(2026, 6, 1))
    month = report([component], "2026-06", now=utc(2026, 6, 15, 12))
    assert month.partial
    assert month.until == utc(2026, 6, 15, 12)
    assert month.figures.counted_minutes == Decimal("14.5") * 1440


def test_a_month_still_to_come_has_no_data_and_is_not_partial(page):
    component = ComponentFactory()
    month = report([component], "2026-08", now=utc(2026, 7, 15))
    assert not month.partial and not month.has_data and not month.breached
    assert month.until == month.start


def test_a_group_pools_its_components_days(page):
    # Two components, June: 2 x 43,200 = 86,400 counted minutes; one major hour:
    # uptime = 100 x (1 - 60 / 86,400) = 99.930555… %, below the group's 99.95 %.
    group = ComponentGroupFactory(
        sla_target=Decimal("99.95"), sla_credit_tiers=[{"below": 99.95, "credit": 5}]
    )
    down, up = ComponentFactory(group=group), ComponentFactory(group=group)
    history(
        down,
        utc(2026, 6, 1),
        [
            (utc(2026, 6, 3, 9), ComponentStatus.MAJOR_OUTAGE),
            (utc(2026, 6, 3, 10), ComponentStatus.OPERATIONAL),
        ],
        utc(2026, 7, 1),
    )
    history(up, utc(2026, 6, 1), [], utc(2026, 7, 1))
    month = report([down, up], "2026-06", now=utc(2026, 7, 3), terms=group_terms(group))
    assert month.figures.counted_minutes == 86_400
    assert round(month.figures.uptime_percent, 6) == Decimal("99.930556")
    assert month.breached
    assert month.credit == CreditTier(Decimal("99.95"), Decimal(5))
    # The components have no terms of their own: they take the group's.
    down.refresh_from_db()
    assert component_terms(down) == SlaTerms(
        target=Decimal("99.95"), tiers=[CreditTier(Decimal("99.95"), Decimal(5))], inherited=True
    )


def test_a_group_with_no_components_has_no_data(page):
    month = report([], "2026-06", now=utc(2026, 7, 3))
    assert month.figures.uptime_percent is None
    assert not month.breached


def test_a_component_with_its_own_target_keeps_it_and_one_alone_has_none(page):
    group = ComponentGroupFactory(sla_target=Decimal("99.5"))
    own = ComponentFactory(group=group, sla_target=Decimal("99.99"))
    assert component_terms(own).target == Decimal("99.99")
    assert not component_terms(own).inherited
    assert component_terms(ComponentFactory()) == NO_TERMS


def days_with(major_seconds, *, days=30):
    """A 30-day month as DayUptime values, `major_seconds` of major outage on the first."""
    whole = [
        DayUptime(date(2026, 6, d), {ComponentStatus.OPERATIONAL: 86_400})
        for d in range(2, days + 1)
    ]
    first = DayUptime(
        date(2026, 6, 1),
        {
            ComponentStatus.OPERATIONAL: 86_400 - major_seconds,
            ComponentStatus.MAJOR_OUTAGE: major_seconds,
        },
    )
    return [first, *whole]


def test_exactly_at_the_target_is_not_a_breach_and_earns_no_credit():
    # 0.1 % of 2,592,000 s is 2,592 s: uptime is exactly 99.9, not below it.
    figures = month_figures(days_with(2_592), {"major_outage": 1.0})
    assert figures.uptime_percent == Decimal("99.9")
    assert credit_for(figures.uptime_percent, TIERS) is None
    # One second more is below.
    figures = month_figures(days_with(2_593), {"major_outage": 1.0})
    assert figures.uptime_percent < Decimal("99.9")
    assert credit_for(figures.uptime_percent, TIERS) == TIERS[0]


@pytest.mark.parametrize(
    ("uptime", "credit"),
    [
        ("100", None),
        ("99.9", None),
        ("99.8999", 10),
        ("99", 10),
        ("98.9999", 25),
        ("95", 25),
        ("94.9", 100),
        ("0", 100),
        (None, None),
    ],
)
def test_credit_tier_boundaries(uptime, credit):
    earned = credit_for(None if uptime is None else Decimal(uptime), TIERS)
    assert (earned.credit if earned else None) == credit


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2026-03", (2026, 3)), ("1970-01", (1970, 1)), ("9998-12", (9998, 12))],
)
def test_parse_month_reads_yyyy_mm(text, expected):
    assert parse_month(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-13",
        "2026-00",
        "0000-01",
        "1969-12",
        "2026-1",
        "26-01",
        "2026-01\n",
        "2026-01\x00",
        " 2026-01",
        "2026\u202e-01",
        "99999999-01",
        "9" * 5000 + "-01",
        "",
        "2026-03-01",
        "２０２６-０３",  # full-width digits are digits to \d, not to us
    ],
)
def test_parse_month_refuses_anything_else(text):
    with pytest.raises(ValueError):
        parse_month(text)


def test_month_bounds_are_local_midnights():
    start, end = month_bounds(2026, 12, BERLIN)
    assert start == datetime(2026, 12, 1, tzinfo=BERLIN)
    assert end == datetime(2027, 1, 1, tzinfo=BERLIN)


def test_credit_tiers_read_a_valid_list():
    tiers = credit_tiers(
        [{"below": 99.9, "credit": 10}, {"below": "99", "credit": 25}, {"below": 95, "credit": 100}]
    )
    assert tiers == TIERS
    assert credit_tiers([]) == []


@pytest.mark.parametrize(
    "value",
    [
        [{"below": 99, "credit": 10}, {"below": 99.9, "credit": 25}],  # unordered
        [{"below": 99, "credit": 10}, {"below": 99, "credit": 25}],  # not strictly
        [{"below": 99.9, "credit": 25}, {"below": 99, "credit": 10}],  # credit shrinks
        [{"below": -1, "credit": 10}],
        [{"below": 0, "credit": 10}],
        [{"below": 100.5, "credit": 10}],
        [{"below": 99, "credit": -5}],
        [{"below": 99, "credit": 101}],
        [{"below": "abc", "credit": 10}],
        [{"below": "NaN", "credit": 10}],
        [{"below": "Infinity", "credit": 10}],
        [{"below": True, "credit": 10}],
        [{"below": None, "credit": 10}],
        [{"below": 99}],
        [{"below": 99, "credit": 10, "extra": 1}],
        [[99, 10]],
        {"below": 99, "credit": 10},
        "99.9:10",
    ],
)
def test_credit_tiers_refuse_what_is_not_a_strictly_ordered_list(value):
    with pytest.raises(ValidationError):
        credit_tiers(value)


@pytest.mark.parametrize("target", ["0", "-1", "100.0001", "1e9"])
def test_a_target_out_of_range_is_a_form_error(page, target):
    component = ComponentFactory.build(sla_target=Decimal(target))
    with pytest.raises(ValidationError) as error:
        component.full_clean()
    assert "above 0 and at most 100" in " ".join(error.value.message_dict["sla_target"])

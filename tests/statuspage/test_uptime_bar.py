"""The uptime bar's markup: runs of alike days, each with the tooltip that describes it."""

import re
from datetime import date, timedelta
from types import SimpleNamespace

from components.models import ComponentStatus
from components.uptime import DayUptime
from statuspage.templatetags.beacon import uptime_bar

FIRST = date(2026, 8, 25)
WHOLE_DAY = 86400


def operational(day: date) -> DayUptime:
    return DayUptime(day, {ComponentStatus.OPERATIONAL: WHOLE_DAY})


def cells_of(html: str) -> list[tuple[str, int, str]]:
    """(class, days, label) per cell."""
    cells = []
    for attrs in re.findall(r"<li ([^>]*)>", html):
        classes = re.search(r'class="([^"]*)"', attrs).group(1)
        span = re.search(r"\bspan-(\d+)", classes)
        cells.append(
            (
                re.sub(r" span-\d+", "", classes),
                int(span.group(1)) if span else 1,
                re.search(r'aria-label="([^"]*)"', attrs).group(1),
            )
        )
    return cells


def ninety_days() -> list[DayUptime]:
    return [operational(FIRST + timedelta(days=i)) for i in range(90)]


def test_alike_days_merge_and_days_with_something_to_say_stand_alone():
    days = ninety_days()
    outage = SimpleNamespace(name='<script>alert("x")</script> & co')
    days[40] = DayUptime(
        days[40].day,
        {ComponentStatus.OPERATIONAL: WHOLE_DAY - 3600, ComponentStatus.MAJOR_OUTAGE: 3600},
        [outage],
    )
    days[41] = DayUptime(
        days[41].day,
        {
            ComponentStatus.OPERATIONAL: WHOLE_DAY / 2,
            ComponentStatus.DEGRADED_PERFORMANCE: WHOLE_DAY / 2,
        },
    )

    html = str(uptime_bar(days, label="API"))
    cells = cells_of(html)

    assert [days for _, days, _ in cells] == [40, 1, 1, 18, 29, 1]
    assert cells[0] == ("tone-ok early", 40, "Aug 25 – Oct 3, 2026. 100% uptime. No incidents.")
    assert cells[1][0] == "tone-critical tip-mid early"
    assert cells[1][2] == (
        "Oct 4, 2026. 95.83% uptime. "
        "Incidents: &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co."
    )
    assert "<script>" not in html
    assert cells[2] == ("tone-minor tip-mid early", 1, "Oct 5, 2026. 100% uptime. No incidents.")
    # Runs stop where narrow screens (the last 30 days) begin, and before today.
    assert cells[3][0] == "tone-ok tip-mid early"
    assert cells[4] == ("tone-ok tip-end", 29, "Oct 24 – Nov 21, 2026. 100% uptime. No incidents.")
    assert cells[5][1:] == (1, "Nov 22, 2026. 100% uptime. No incidents.")
    assert html.count('tabindex="0"') == 1 and 'tabindex="0"' in html.split("<li")[-1]


def test_two_days_of_one_incident_are_not_merged():
    days = ninety_days()
    incident = SimpleNamespace(name="Login failures")
    for i in (70, 71):
        days[i] = DayUptime(days[i].day, {ComponentStatus.MAJOR_OUTAGE: WHOLE_DAY}, [incident])

    cells = cells_of(str(uptime_bar(days, label="API")))

    assert [days for _, days, _ in cells] == [60, 10, 1, 1, 17, 1]
    assert cells[2][2] == "Nov 3, 2026. 0.00% uptime. Incidents: Login failures."


def test_a_range_across_new_year_names_both_years():
    days = [operational(date(2025, 12, 1) + timedelta(days=i)) for i in range(90)]

    cells = cells_of(str(uptime_bar(days, label="API")))

    assert cells[0][2] == "Dec 1, 2025 – Jan 29, 2026. 100% uptime. No incidents."

"""Response-time charts: series read from check rollups, drawn as plain SVG on the server.

No JavaScript and no dependency. Colours come from CSS classes (static/css/beacon.css, dark
mode aware); presentation attributes using currentColor keep a chart legible where that
stylesheet is not loaded (the admin). Every text is escaped.
"""

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from django.db.models import Q
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, gettext_lazy, ngettext

from components.checks.rollups import LENGTHS, bucket_start
from components.models import CheckRollup, HealthCheck, RollupPeriod
from statuspage.lib.local_format import format_date, format_number

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise

    StrOrPromise = str | _StrPromise


@dataclass(frozen=True)
class Range:
    key: str
    label: "StrOrPromise"  # what the switch shows
    spoken: "StrOrPromise"  # what a screen reader says
    period: str
    buckets: int


# Lazy words: each is read in the language active where the chart is drawn.
RANGES = {
    "24h": Range("24h", gettext_lazy("24 h"), gettext_lazy("24 hours"), RollupPeriod.HOUR, 24),
    "7d": Range("7d", gettext_lazy("7 d"), gettext_lazy("7 days"), RollupPeriod.HOUR, 7 * 24),
    "30d": Range("30d", gettext_lazy("30 d"), gettext_lazy("30 days"), RollupPeriod.DAY, 30),
}


@dataclass(frozen=True)
class Point:
    """One bucket of a series; a bucket without results has count 0 and no latencies."""

    start: datetime
    period: str
    count: int = 0
    failures: int = 0
    p50: float | None = None
    p95: float | None = None


def range_starts(spec: Range, now: datetime) -> list[datetime]:
    """The bucket starts of a range ending with the bucket `now` is in, oldest first."""
    last = bucket_start(now, spec.period)
    length = LENGTHS[spec.period]
    return [last - length * i for i in range(spec.buckets - 1, -1, -1)]


def rollups_filter(now: datetime, ranges: Iterable[Range] = RANGES.values()) -> Q:
    """Rollups any of `ranges` needs, whatever the check."""
    since: dict[str, datetime] = {}
    for spec in ranges:
        first = range_starts(spec, now)[0]
        since[spec.period] = min(first, since.get(spec.period, first))
    where = Q(pk__in=[])
    for period, first in since.items():
        where |= Q(period=period, start__gte=first)
    return where


def series(rollups: Iterable[CheckRollup], spec: Range, now: datetime) -> list[Point]:
    """One point per bucket of the range, from one check's rollups (of any period)."""
    by_start = {r.start: r for r in rollups if r.period == spec.period}
    points = []
    for start in range_starts(spec, now):
        rollup = by_start.get(start)
        if rollup is None:
            points.append(Point(start, spec.period))
        else:
            points.append(
                Point(
                    start,
                    spec.period,
                    rollup.count,
                    rollup.failures,
                    rollup.latency_p50,
                    rollup.latency_p95,
                )
            )
    return points


def response_time_series(
    check: HealthCheck, *, range: str = "24h", now: datetime | None = None
) -> list[Point]:
    """A check's response times over "24h" (hourly), "7d" (hourly) or "30d" (daily)."""
    spec = RANGES[range]
    now = now or timezone.now()
    rollups = CheckRollup.objects.filter(rollups_filter(now, [spec]), health_check=check)
    return series(rollups, spec, now)


# Drawing

TOP = 18  # room for the highest y tick label
BOTTOM = 22  # room for the x axis labels


def response_time_svg(
    points: Sequence[Point],
    *,
    title: str,
    width: int = 640,
    height: int = 180,
    unit: str = "ms",
    zone: tzinfo | None = None,
    chart_id: str | None = None,
) -> SafeString:
    """An accessible line chart of the median (a line) and the 95th percentile (a band).

    The plot is a nested SVG stretched to the chart's width, so the chart follows its
    container (CSS width: 100%) while labels keep their size. Buckets with failed checks are
    shaded. `zone` is the time zone of hourly labels (UTC by default; days are UTC days);
    `chart_id` prefixes the ids of the title and description (by default from the title).
    """
    zone = zone or UTC
    n = len(points)
    # Stable ids: the same data renders the same bytes (snapshots, ETags).
    chart_id = chart_id or "rt-" + hashlib.sha1(title.encode()).hexdigest()[:10]
    top_value = _nice_ceiling(max((p.p95 or p.p50 or 0 for p in points), default=0))
    plot_height = height - TOP - BOTTOM

    def y(value: float) -> str:
        return _number(100 - value / top_value * 100)

    parts = [svg_start("rt-chart", width, height, chart_id, title, _describe(points, unit))]
    parts.append(grid(plot_height, top_value, lambda value: _amount(value, unit)))
    parts.append(
        format_html(
            '<svg class="rt-plot" x="0" y="{}" width="100%" height="{}" viewBox="0 0 {} 100" '
            'preserveAspectRatio="none" aria-hidden="true">',
            TOP,
            plot_height,
            max(n, 1),
        )
    )
    for i, point in enumerate(points):
        if point.failures:
            failed = f"{point.failures} failed check{'s' if point.failures != 1 else ''}"
            parts.append(
                format_html(
                    '<rect class="rt-failure" x="{}" y="0" width="1" height="100" '
                    'fill="currentColor" fill-opacity="0.15"><title>{}, {}</title></rect>',
                    i,
                    failed,
                    _when(point, zone),
                )
            )
    for run in _runs(points):
        band = [(i, v) for i in run if (v := points[i].p95) is not None]
        median = [(i, v) for i in run if (v := points[i].p50) is not None]
        if len(band) == len(median) == len(run):
            outline = " L".join(
                f"{_number(x)} {y(v)}" for x, v in _stretch(band) + _stretch(median)[::-1]
            )
            parts.append(
                format_html(
                    '<path class="rt-band" d="M{}Z" fill="currentColor" fill-opacity="0.15"/>',
                    outline,
                )
            )
        if median:
            line = " L".join(f"{_number(x)} {y(v)}" for x, v in _stretch(median))
            parts.append(
                format_html(
                    '<path class="rt-line" d="M{}" fill="none" stroke="currentColor" '
                    'stroke-width="2" stroke-linejoin="round" '
                    'vector-effect="non-scaling-stroke"/>',
                    line,
                )
            )
    parts.append(mark_safe("</svg>"))
    if points:
        baseline = height - 6
        middle = points[n // 2]
        short = points[-1].start - points[0].start < timedelta(days=1)
        parts.append(
            format_html(
                '<text class="rt-axis" x="0" y="{}" fill="currentColor">{}</text>'
                '<text class="rt-axis" x="{}%" y="{}" text-anchor="middle" fill="currentColor">'
                "{}</text>"
                '<text class="rt-axis" x="100%" y="{}" text-anchor="end" fill="currentColor">'
                "{}</text>",
                baseline,
                _when(points[0], zone, short=short),
                _number((n // 2 + 0.5) / n * 100),
                baseline,
                _when(middle, zone, short=short),
                baseline,
                _when(points[-1], zone, short=short),
            )
        )
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(parts))


def svg_start(
    css_class: str,
    width: int,
    height: int,
    chart_id: str,
    title: str,
    description: str,
    *,
    scalable: bool = False,
) -> SafeString:
    """An accessible chart's opening tag, its title and its description (left open).

    `scalable` charts have a viewBox: shown as an image, they shrink as a whole (labels
    too); inline charts have none and stretch their plot to the container instead.
    """
    return format_html(
        '<svg class="{}" xmlns="http://www.w3.org/2000/svg" role="img" '
        'width="{}" height="{}"{} aria-labelledby="{}-title {}-desc">'
        '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>',
        css_class,
        width,
        height,
        format_html(' viewBox="0 0 {} {}"', width, height) if scalable else "",
        chart_id,
        chart_id,
        chart_id,
        title,
        chart_id,
        description,
    )


def grid(plot_height: int, top_value: float, label: Callable[[float], str]) -> SafeString:
    """Three horizontal lines (the top value, half of it, zero), each with its label."""
    lines = []
    for fraction in (1, 0.5, 0):
        line_y = TOP + plot_height * (1 - fraction)
        lines.append(
            (_number(line_y), _number(line_y), _number(line_y - 4), label(top_value * fraction))
        )
    return format_html_join(
        "",
        '<line class="rt-grid" x1="0" x2="100%" y1="{}" y2="{}" '
        'stroke="currentColor" stroke-opacity="0.2"/>'
        '<text class="rt-tick" x="2" y="{}" fill="currentColor">{}</text>',
        lines,
    )


def check_chart_svg(check: HealthCheck, *, now: datetime | None = None) -> SafeString:
    """The last 24 hours of a check's response times (hourly rollups), for the admin page."""
    points = response_time_series(check, range="24h", now=now)
    if not any(p.count for p in points):
        return format_html('<p class="rt-empty">{}</p>', gettext("No data yet."))
    return response_time_svg(
        points,
        title=gettext("%(name)s: response times, last 24 hours") % {"name": check.name},
    )


def _describe(points: Sequence[Point], unit: str) -> str:
    """A sentence saying what the chart shows."""
    span = _span(points)
    checked = [p for p in points if p.count]
    if not checked:
        return gettext("No checks ran over the last %(span)s.") % {"span": span}
    medians = sorted(p.p50 for p in checked if p.p50 is not None)
    failures = sum(p.failures for p in checked)
    failed = ngettext("%(count)s failed check", "%(count)s failed checks", failures) % {
        "count": failures
    }
    if not medians:
        return gettext("No response times, %(failed)s over the last %(span)s.") % {
            "failed": failed,
            "span": span,
        }
    # The median of the buckets' medians: what a typical hour (or day) looked like.
    typical = medians[(len(medians) - 1) // 2]
    worst = max((p.p95 for p in checked if p.p95 is not None), default=medians[-1])
    return gettext(
        "Median response time %(typical)s, 95th percentile up to %(worst)s, "
        "%(failed)s over the last %(span)s."
    ) % {
        "typical": _amount(typical, unit),
        "worst": _amount(worst, unit),
        "failed": failed,
        "span": span,
    }


def _span(points: Sequence[Point]) -> str:
    if not points:
        return ngettext("%(hours)s hour", "%(hours)s hours", 0) % {"hours": 0}
    total = (points[-1].start - points[0].start) + LENGTHS[points[0].period]
    days, rest = divmod(total, timedelta(days=1))
    if days >= 2 and not rest:
        return ngettext("%(days)s day", "%(days)s days", days) % {"days": days}
    hours = total // timedelta(hours=1)
    return ngettext("%(hours)s hour", "%(hours)s hours", hours) % {"hours": hours}


def _runs(points: Sequence[Point]) -> list[list[int]]:
    """Indexes of consecutive points with a median: the line breaks where data is missing."""
    runs: list[list[int]] = []
    for i, point in enumerate(points):
        if point.p50 is None:
            continue
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _stretch(values: list[tuple[int, float]]) -> list[tuple[float, float]]:
    """Points at their buckets' centres; a lone point becomes a short level stroke."""
    if len(values) == 1:
        i, value = values[0]
        return [(i + 0.2, value), (i + 0.8, value)]
    return [(i + 0.5, value) for i, value in values]


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 4, 5 or 10 times a power of ten at or above `value`, so that
    half of it is a round number too."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 4, 5, 10):
        if value <= step * power:
            return float(step * power)
    return 10.0 * power


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _amount(value: float, unit: str) -> str:
    if value >= 100 or value == int(value):
        return f"{format_number(f'{round(value):,}')} {unit}"
    return f"{format_number(f'{value:.1f}')} {unit}"


def _when(point: Point, zone: tzinfo, *, short: bool = False) -> str:
    """A bucket's start in `zone`: the day for daily buckets; the time of day alone on the
    axis of a chart spanning one day (`short`)."""
    if point.period == RollupPeriod.DAY:
        return format_date(point.start.astimezone(UTC), "day")  # a UTC day, wherever one is
    local = point.start.astimezone(zone)
    return local.strftime("%H:%M") if short else format_date(local, "day_time")

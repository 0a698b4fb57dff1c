"""The 24-hour chart of visitors' reports: hourly stacked bars coloured by component, with
each component's and each symptom's share, drawn as plain SVG on the server.

Pure: `reports_chart` shapes hourly tallies (from `selectors.reports_last_day`) and
`reports_chart_svg` draws them, as components/charts.py draws response times. Colours are
presentation attributes (no inline style, which the public CSP refuses) with a class per
series that stylesheets may override. Every name is escaped.
"""

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, gettext_lazy, ngettext

from components.charts import TOP, _nice_ceiling, _number, grid, svg_start
from components.reports.models import NO_SYMPTOM, Symptom
from statuspage.lib.local_format import format_number

HOURS = 24
# Components drawn in their own colour; the rest share "Others".
TOP_COMPONENTS = 5
# Okabe-Ito: told apart with the common colour-vision deficiencies. The last one is "Others".
COLOURS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#8c8c8c")
# Lazy: each is read in the language active where the chart is drawn.
SOMETHING_ELSE = gettext_lazy("Something else")
OTHERS = gettext_lazy("Others")
NO_SYMPTOM_LABEL = gettext_lazy("No symptom given")
EMPTY = gettext_lazy("No reports in the last 24 hours.")
UNAVAILABLE = gettext_lazy("The reports chart cannot be shown right now.")
DEFAULT_TITLE = gettext_lazy("Visitors' reports, last 24 hours")
# Where no stylesheet applies (the chart as an image of its own): the page's usual fonts.
FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"
_SHARE_ROW = '<tr><th scope="row">{}</th><td>{}</td><td>{}</td></tr>'


@dataclass(frozen=True)
class HourlyTally:
    """Reports of one component (None: "something else") with one symptom in one hour."""

    component_id: int | None
    component: str | None  # the component's name
    symptom: str
    hour: datetime
    count: int


@dataclass(frozen=True)
class Share:
    label: str
    count: int
    total: int

    @property
    def percent(self) -> str:
        return f"{round(self.count / self.total * 100)} %" if self.total else "0 %"


@dataclass(frozen=True)
class Series:
    label: str
    counts: tuple[int, ...]  # one per hour, oldest first


@dataclass(frozen=True)
class ReportsChart:
    hours: tuple[datetime, ...]  # the starts of the 24 hours, oldest first
    series: tuple[Series, ...]  # the top components, then "Others" when there are more
    components: tuple[Share, ...]  # each series' share, in the same order
    symptoms: tuple[Share, ...]  # each symptom reported, most first
    total: int


def hour_starts(now: datetime) -> list[datetime]:
    """The 24 hour starts ending with the hour `now` is in, oldest first (UTC)."""
    last = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [last - timedelta(hours=back) for back in range(HOURS - 1, -1, -1)]


def reports_chart(tallies: Iterable[HourlyTally], *, now: datetime) -> ReportsChart:
    """The chart's numbers from hourly tallies; tallies outside the 24 hours are ignored."""
    hours = hour_starts(now)
    index = {hour: i for i, hour in enumerate(hours)}
    per_component: dict[int | None, list[int]] = defaultdict(lambda: [0] * HOURS)
    labels: dict[int | None, str] = {None: str(SOMETHING_ELSE)}
    per_symptom: dict[str, int] = defaultdict(int)
    for tally in tallies:
        i = index.get(tally.hour.astimezone(UTC))
        if i is None or not tally.count:
            continue
        per_component[tally.component_id][i] += tally.count
        labels[tally.component_id] = tally.component or str(SOMETHING_ELSE)
        per_symptom[_symptom_label(tally.symptom)] += tally.count
    total = sum(per_symptom.values())
    ranked = sorted(
        ((labels[key], counts) for key, counts in per_component.items()),
        key=lambda item: (-sum(item[1]), item[0]),
    )
    shown = ranked if len(ranked) <= TOP_COMPONENTS + 1 else ranked[:TOP_COMPONENTS]
    series = [Series(label, tuple(counts)) for label, counts in shown]
    if len(shown) < len(ranked):
        rest = [
            sum(column) for column in zip(*(c for _, c in ranked[TOP_COMPONENTS:]), strict=True)
        ]
        series.append(Series(str(OTHERS), tuple(rest)))
    symptoms = sorted(per_symptom.items(), key=lambda item: (-item[1], item[0]))
    return ReportsChart(
        hours=tuple(hours),
        series=tuple(series),
        components=tuple(Share(s.label, sum(s.counts), total) for s in series),
        symptoms=tuple(Share(label, count, total) for label, count in symptoms),
        total=total,
    )


def _symptom_label(symptom: str) -> str:
    if symptom == NO_SYMPTOM:
        return str(NO_SYMPTOM_LABEL)
    try:
        return str(Symptom(symptom).label)
    except ValueError:
        return symptom


def describe(chart: ReportsChart) -> str:
    """The chart in one sentence, every number in it (what a screen reader says)."""
    if not chart.total:
        return str(EMPTY)
    components = "; ".join(
        f"{s.label} {format_number(f'{s.count:,}')} ({s.percent})" for s in chart.components
    )
    symptoms = "; ".join(
        f"{s.label} {format_number(f'{s.count:,}')} ({s.percent})" for s in chart.symptoms
    )
    return ngettext(
        "%(reports)s report in the last 24 hours. By component: %(components)s. "
        "By symptom: %(symptoms)s.",
        "%(reports)s reports in the last 24 hours. By component: %(components)s. "
        "By symptom: %(symptoms)s.",
        chart.total,
    ) % {
        "reports": format_number(f"{chart.total:,}"),
        "components": components,
        "symptoms": symptoms,
    }


# Drawing

AXIS = 22  # room for the x axis labels
LEGEND_ROW = 18
LEGEND_COLUMNS = 3


def reports_chart_svg(
    chart: ReportsChart,
    *,
    title: str | None = None,
    width: int = 640,
    plot_height: int = 140,
    zone: tzinfo | None = None,
    standalone: bool = False,
) -> SafeString:
    """Stacked hourly bars, one colour per component, and a legend of the components' and
    symptoms' shares under them. An empty chart says so in place of the bars.

    The same data renders the same bytes (ids come from the title), so a stored copy only
    changes when the numbers do. Hours are labelled in `zone` (UTC by default). A
    `standalone` chart (an image of its own, where no stylesheet reaches) scales as a whole
    and has a light background of its own, legible on a dark page too.
    """
    zone = zone or UTC
    title = str(DEFAULT_TITLE) if title is None else title
    chart_id = "rc-" + hashlib.sha1(title.encode()).hexdigest()[:10]
    if not chart.total:
        return message_svg(f"{title}: {EMPTY}", str(EMPTY), width=width, standalone=standalone)
    legend_rows = -(-len(chart.components) // LEGEND_COLUMNS) + 1  # + the symptoms' heading
    legend_rows += -(-len(chart.symptoms) // LEGEND_COLUMNS)
    height = TOP + plot_height + AXIS + legend_rows * LEGEND_ROW + 4
    stacks = [sum(s.counts[i] for s in chart.series) for i in range(len(chart.hours))]
    top_value = _nice_ceiling(max(stacks))
    parts = [
        svg_start("rc-chart", width, height, chart_id, title, describe(chart), scalable=standalone),
        format_html('<g font-family="{}" font-size="11">', FONT),
    ]
    if standalone:
        parts.append(mark_safe('<rect width="100%" height="100%" fill="#ffffff"/>'))
    parts.append(grid(plot_height, top_value, lambda value: format_number(f"{round(value):,}")))
    parts.append(
        format_html(
            '<svg class="rc-plot" x="0" y="{}" width="100%" height="{}" viewBox="0 0 {} 100" '
            'preserveAspectRatio="none" aria-hidden="true">',
            TOP,
            plot_height,
            len(chart.hours),
        )
    )
    for i, hour in enumerate(chart.hours):
        floor = 0.0
        for n, series in enumerate(chart.series):
            count = series.counts[i]
            if not count:
                continue
            bar = count / top_value * 100
            parts.append(
                format_html(
                    '<rect class="rc-bar rc-series-{}" x="{}" y="{}" width="0.8" height="{}" '
                    'fill="{}"><title>{}: {} report{}, {}</title></rect>',
                    n,
                    _number(i + 0.1),
                    _number(100 - floor - bar),
                    _number(bar),
                    _colour(n, series.label),
                    series.label,
                    format_number(f"{count:,}"),
                    "s" if count != 1 else "",
                    _hour(hour, zone),
                )
            )
            floor += bar
    parts.append(mark_safe("</svg>"))
    baseline = TOP + plot_height + AXIS - 6
    middle = len(chart.hours) // 2
    parts.append(
        format_html(
            '<text class="rc-axis" x="0" y="{}" fill="currentColor">{}</text>'
            '<text class="rc-axis" x="{}%" y="{}" text-anchor="middle" fill="currentColor">{}'
            '</text><text class="rc-axis" x="100%" y="{}" text-anchor="end" '
            'fill="currentColor">{}</text>',
            baseline,
            _hour(chart.hours[0], zone),
            _number((middle + 0.5) / len(chart.hours) * 100),
            baseline,
            _hour(chart.hours[middle], zone),
            baseline,
            _hour(chart.hours[-1], zone),
        )
    )
    row_y = TOP + plot_height + AXIS + LEGEND_ROW - 4
    parts.append(_legend(chart.components, row_y, swatches=True))
    row_y += -(-len(chart.components) // LEGEND_COLUMNS) * LEGEND_ROW
    parts.append(
        format_html(
            '<text class="rc-legend-heading" x="0" y="{}" fill="currentColor">{}</text>',
            row_y,
            gettext("By symptom"),
        )
    )
    parts.append(_legend(chart.symptoms, row_y + LEGEND_ROW, swatches=False))
    parts.append(mark_safe("</g></svg>"))
    return mark_safe("".join(parts))


def message_svg(title: str, text: str, *, width: int = 640, standalone: bool = False) -> SafeString:
    """A chart-sized line of text in place of a chart (nothing to draw, or nothing to show)."""
    chart_id = "rc-" + hashlib.sha1(title.encode()).hexdigest()[:10]
    return format_html(
        '<svg class="rc-chart" xmlns="http://www.w3.org/2000/svg" role="img" width="{}" '
        'height="40" viewBox="0 0 {} 40" font-family="{}" font-size="13" '
        'aria-labelledby="{}-title"><title id="{}-title">{}</title>{}'
        '<text class="rc-empty" x="8" y="25" fill="currentColor">{}</text></svg>',
        width,
        width,
        FONT,
        chart_id,
        chart_id,
        title,
        mark_safe('<rect width="100%" height="100%" fill="#ffffff"/>') if standalone else "",
        text,
    )


def _legend(shares: Sequence[Share], first_y: int, *, swatches: bool) -> SafeString:
    """Shares in columns: "API 45 % (120)", each after its series' colour when `swatches`."""
    column_width = 100 / LEGEND_COLUMNS
    entries = []
    for n, share in enumerate(shares):
        row, column = divmod(n, LEGEND_COLUMNS)
        x = column * column_width
        y = first_y + row * LEGEND_ROW
        swatch = (
            format_html(
                '<rect class="rc-series-{}" x="{}%" y="{}" width="10" height="10" fill="{}"/>',
                n,
                _number(x),
                y - 9,
                _colour(n, share.label),
            )
            if swatches
            else ""
        )
        entries.append(
            (
                swatch,
                _number(x),
                14 if swatches else 0,
                y,
                share.label,
                share.percent,
                format_number(f"{share.count:,}"),
            )
        )
    return format_html_join(
        "",
        '{}<text class="rc-legend" x="{}%" dx="{}" y="{}" fill="currentColor">{} {} ({})</text>',
        entries,
    )


def _colour(n: int, label: str) -> str:
    return COLOURS[-1] if label == str(OTHERS) else COLOURS[n % (len(COLOURS) - 1)]


def _hour(hour: datetime, zone: tzinfo) -> str:
    return hour.astimezone(zone).strftime("%H:%M")


def reports_chart_html(chart: ReportsChart, *, zone: tzinfo | None = None) -> SafeString:
    """The chart for a page (the staff console): the SVG, then its numbers as tables."""
    if not chart.total:
        return format_html('<p class="rc-empty">{}</p>', str(EMPTY))
    rows = [
        (
            caption,
            format_html_join(
                "",
                _SHARE_ROW,
                [(s.label, format_number(f"{s.count:,}"), s.percent) for s in shares],
            ),
        )
        for caption, shares in (
            (gettext("By component"), chart.components),
            (gettext("By symptom"), chart.symptoms),
        )
    ]
    heads = (gettext("Name"), gettext("Reports"), gettext("Share"))
    tables = format_html_join(
        "",
        '<table class="rc-shares"><caption>{}</caption><thead><tr><th scope="col">{}</th>'
        '<th scope="col">{}</th><th scope="col">{}</th></tr></thead><tbody>{}'
        "</tbody></table>",
        [(caption, *heads, body) for caption, body in rows],
    )
    return format_html(
        '<figure class="rc-figure">{}<figcaption>{}</figcaption></figure>{}',
        reports_chart_svg(chart, zone=zone),
        ngettext(
            "%(reports)s report in the last 24 hours.",
            "%(reports)s reports in the last 24 hours.",
            chart.total,
        )
        % {"reports": format_number(f"{chart.total:,}")},
        tables,
    )

import math
import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from html import escape as html_escape

from django import template
from django.conf import settings
from django.template.base import FilterExpression, NodeList, Parser, Token, token_kwargs
from django.template.context import Context
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.utils import formats
from django.utils.dates import WEEKDAYS, WEEKDAYS_ABBR
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language, gettext, ngettext

from components.models import ComponentStatus
from components.uptime import DayUptime, MonthUptime
from incidents.models import Incident, IncidentUpdate
from incidents.postmortems import Postmortem, structured_postmortem
from statuspage.lib.kept import Kept
from statuspage.lib.local_format import DateStyle, format_date, format_percent
from statuspage.lib.markdown import render_markdown
from statuspage.models import PageSettings
from statuspage.public.isolation import isolated as render_isolated
from statuspage.public.isolation import plain_incident_html
from statuspage.public.selectors import ComponentRow, UptimeHistory

register = template.Library()


@register.simple_tag
def error_page_static(path: str) -> str:
    """A static file's URL for the error pages, which must render whatever state the install
    is in: the hashed name, or the plain one when the manifest lacks it (collectstatic not
    run since an upgrade). {% static %} raises then, and the 500 page would fail too."""
    try:
        return static(path)
    except ValueError:
        return settings.STATIC_URL + path


@register.filter
def translated_body(update: IncidentUpdate) -> str:
    """An update's body in the active language: staff's translation when there is one."""
    return update.body_in(get_language())


@register.filter
def postmortem_of(incident: Incident) -> Postmortem | None:
    """The incident's structured postmortem, or None for a free-form one."""
    return structured_postmortem(incident)


@register.filter
def markdown(text: str) -> str:
    return mark_safe(render_markdown(text))  # noqa: S308 - sanitised by nh3


@register.tag
def isolated(parser: Parser, token: Token) -> "IsolatedNode":
    """`{% isolated incident heading="h1" link=False card=True %}…{% endisolated %}`: the
    block, or the incident as plain text when rendering it fails (statuspage.public.isolation);
    the options shape that plain text like what it replaces."""
    bits = token.split_contents()
    if len(bits) < 2:
        raise template.TemplateSyntaxError("usage: {% isolated incident [option=value…] %}")
    options = token_kwargs(bits[2:], parser)
    if len(options) != len(bits) - 2 or not set(options) <= {"heading", "link", "card"}:
        raise template.TemplateSyntaxError("isolated takes heading=, link= and card= only")
    nodelist = parser.parse(("endisolated",))
    parser.delete_first_token()
    return IsolatedNode(nodelist, parser.compile_filter(bits[1]), options)


class IsolatedNode(template.Node):
    def __init__(
        self,
        nodelist: NodeList,
        incident: FilterExpression,
        options: dict[str, FilterExpression],
    ) -> None:
        self.nodelist, self.incident, self.options = nodelist, incident, options

    def render(self, context: Context) -> SafeString:
        incident = self.incident.resolve(context)
        options = {name: value.resolve(context) for name, value in self.options.items()}
        return render_isolated(
            incident,
            lambda: self.nodelist.render(context),
            lambda: mark_safe(plain_incident_html(incident, **options)),  # noqa: S308 - escaped
        )


# This process's rendered updates, each under everything it is rendered from: the update's
# status, time and body in the language, its component changes where shown, the page's zone
# and the language. A page rendered again after one more update (in each of its languages)
# renders that update, not its whole timeline again; an edit anywhere is a new entry.
UPDATE_ITEMS_KEPT = 8192
UPDATE_ITEMS_KEPT_CHARS = 8_000_000
UPDATE_ITEM_KEPT_CHARS = 64_000
update_items = Kept(
    lambda: UPDATE_ITEMS_KEPT, lambda: UPDATE_ITEMS_KEPT_CHARS, lambda: UPDATE_ITEM_KEPT_CHARS, len
)


@register.simple_tag(takes_context=True)
def update_item(context: Context, update: IncidentUpdate, show_components: bool = False) -> str:
    """One update of a timeline (statuspage/_update.html), rendered once per process."""
    language = get_language()
    zone = context.get("page_zone") or PageSettings.load().zone
    body = update.body_in(language)
    changes = list(update.affected_components.all()) if show_components else []
    key = (
        update.pk,
        update.status,
        update.display_at,
        body,
        tuple((c.component.name, c.old_status, c.new_status) for c in changes),
        str(zone),
        language,
    )
    html = update_items.get(key)
    if html is None:
        html = render_to_string(
            "statuspage/_update.html",
            {"update": update, "body": body, "changes": changes, "page_zone": zone},
        )
        update_items.put(key, html)
    return mark_safe(html)  # noqa: S308 - rendered by the template, which escapes


@register.simple_tag(takes_context=True)
def page_time(context: Context, value: datetime | None, style: DateStyle = "datetime") -> str:
    """A <time> in UTC for machines, shown in the page's zone until JS shows the visitor's."""
    return format_page_time(value, style, zone=context.get("page_zone"))


def format_page_time(
    value: datetime | None, style: DateStyle = "datetime", *, zone: tzinfo | None = None
) -> str:
    if value is None:
        return ""
    local = value.astimezone(zone or PageSettings.load().zone)
    return format_html(
        '<time datetime="{}" data-format="{}">{}</time>',
        value.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        style,
        format_date(local, style),
    )


@register.filter
def local_date(value: date | None, style: DateStyle = "date") -> str:
    """A date in the active language's form (statuspage/formats/<locale>/formats.py)."""
    return "" if value is None else format_date(value, style)


@register.filter
def duration(value: timedelta | None) -> str:
    if value is None:
        return ""
    minutes = int(value.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    # Abbreviated units, one word each: "3h 2m", "3 Std. 2 Min.".
    parts = [
        gettext("%(days)sd") % {"days": days} if days else "",
        gettext("%(hours)sh") % {"hours": hours} if hours else "",
        gettext("%(minutes)sm") % {"minutes": minutes} if minutes or not (days or hours) else "",
    ]
    return " ".join(p for p in parts if p)


@register.filter
def percent(value: float | None) -> str:
    if value is None:
        return gettext("No data")
    # Truncated, not rounded: a day with any downtime must never read 100%.
    return format_percent(f"{math.floor(value * 100) / 100:.2f}" if value < 100 else "100")


# Status colours: component statuses and page indicators share one scale of tones.
TONES = {
    "operational": "ok",
    "degraded_performance": "minor",
    "partial_outage": "major",
    "major_outage": "critical",
    "under_maintenance": "maintenance",
    # OverallStatus.indicator
    "none": "ok",
    "minor": "minor",
    "major": "major",
    "critical": "critical",
    "maintenance": "maintenance",
}
HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
DEFAULT_BRAND_COLOR = "#2563eb"


@register.filter
def tone(status: str | None) -> str:
    """The colour tone (ok, minor, major, critical, maintenance) of a status or indicator."""
    return TONES.get(status or "", "nodata")


@register.filter
def status_label(status: str) -> str:
    """'major_outage' -> 'Major outage'."""
    try:
        return str(ComponentStatus(status).label)
    except ValueError:
        return status


@register.filter
def css_color(value: str) -> str:
    """A brand colour safe to put in an attribute: the validated hex or the default."""
    return value if isinstance(value, str) and HEX_COLOR.match(value) else DEFAULT_BRAND_COLOR


def _day_text(day: date) -> str:
    return _day_text_in(day, get_language())


@lru_cache(maxsize=512)
def _day_text_in(day: date, language: str) -> str:
    return format_date(day, "date")


def uptime_day_label(day: DayUptime) -> str:
    incidents = "; ".join(incident.name for incident in day.incidents)
    summary = _day_summary(day.has_data, day.uptime_percent, incidents, get_language())
    return _day_text(day.day) + ". " + summary


@lru_cache(maxsize=4096)
def _day_summary(has_data: bool, uptime: float | None, incidents: str, language: str) -> str:
    # Most days of most components read the same ("100% uptime. No incidents."): cached,
    # per language (the words are the active language's).
    parts = []
    if not has_data:
        parts.append(gettext("No data"))
    elif uptime is None:
        parts.append(gettext("Under maintenance"))
    else:
        parts.append(gettext("%(percent)s uptime") % {"percent": percent(uptime)})
    if incidents:
        parts.append(gettext("Incidents: %(names)s") % {"names": incidents})
    elif has_data:
        parts.append(gettext("No incidents"))
    return ". ".join(parts) + "."


def _range_text(first: date, last: date) -> str:
    if first.year == last.year:
        return f"{format_date(first, 'day')} – {_day_text(last)}"
    return f"{_day_text(first)} – {_day_text(last)}"


# Where a cell's tooltip opens, by the day it starts on: at its left edge in the first third
# of the bar, centred in the middle third, at its right edge in the last.
_TIP_PLACES = ("", " tip-mid", " tip-end")
# Narrow screens show the last 30 days only: runs never cross day 60, and the earlier ones
# are hidden there.
NARROW_DAYS = 30


@register.simple_tag
def uptime_bar(days: list[DayUptime], label: str = "") -> SafeString:
    """One list item per run of alike days (same colour, same figures, no incident), coloured
    by its worst status; the label is its tooltip.

    A page of 1,000 components has 90,000 days; most are whole operational days, so a bar is a
    handful of runs rather than 90 cells, and the page a tenth of the size. Days with an
    incident and today stand alone. Only today's cell is in the tab order; beacon.js moves
    focus along the bar with the arrow keys. Built with the standard library's escape rather
    than in a template loop: this runs for every component on every rebuild.
    """
    total = len(days)
    narrow_from = total - NARROW_DAYS
    language = get_language()
    cells = []
    start = 0
    while start < total:
        day = days[start]
        tone_name = tone(day.worst_status) if day.has_data else "nodata"
        incidents = "; ".join(incident.name for incident in day.incidents)
        summary = _day_summary(day.has_data, day.uptime_percent, incidents, language)
        end = start + 1
        if not incidents:
            figures = day.figures
            while end < total - 1 and end != narrow_from:
                following = days[end]
                if following.incidents:
                    break
                # Equal figures (nearly always) look alike; otherwise compare what is shown.
                if following.figures != figures and (
                    (tone(following.worst_status) if following.has_data else "nodata") != tone_name
                    or _day_summary(following.has_data, following.uptime_percent, "", language)
                    != summary
                ):
                    break
                end += 1
        cells.append(
            _cell(tone_name, start, end - start, total, summary, days[start].day, days[end - 1].day)
        )
        start = end
    title = html_escape(
        ngettext(
            "%(label)s: uptime per day over the past %(days)d day",
            "%(label)s: uptime per day over the past %(days)d days",
            total,
        )
        % {"label": label, "days": total},
        quote=True,
    )
    return mark_safe(f'<ol class="bar" aria-label="{title}">{"".join(cells)}</ol>')  # noqa: S308 - escaped


def _cell(
    tone_name: str, start: int, length: int, total: int, summary: str, first: date, last: date
) -> str:
    dates = _day_text(first) if length == 1 else _range_text(first, last)
    label = html_escape(f"{dates}. {summary}", quote=True)
    classes = f"tone-{tone_name}{_TIP_PLACES[min(3 * start // total, 2)]}"
    if start < total - NARROW_DAYS:
        classes += " early"
    if length > 1:
        # A class, not style="--n:…": the Content-Security-Policy allows no style attribute.
        classes += f" span-{length}"
    focusable = ' tabindex="0"' if start + length == total else ""
    return f'<li class="{classes}"{focusable} aria-label="{label}"></li>'


def internal_mark(internal: bool) -> str:
    """The "Internal" tag /internal/ shows beside what the public never sees."""
    if not internal:
        return ""
    word = gettext("Internal")
    return f' <span class="internal-mark">{word}</span>'


@register.simple_tag
def component_row(row: ComponentRow) -> SafeString:
    """A component's line on the page: name, help tip, status, and its 90-day bar.

    Written here rather than as a template partial for the same reason as uptime_bar: a
    page of 1,000 components renders it 1,000 times on every rebuild, and the template
    engine's lookups were a fifth of the page's build time.
    """
    component = row.component
    name = html_escape(component.name)
    tone_name = tone(row.status)
    help_tip = ""
    if component.description:
        anchor = f"about-{html_escape(component.public_id, quote=True)}"
        about = gettext("About %(name)s") % {"name": name}
        help_tip = (
            f'<button type="button" class="help" aria-describedby="{anchor}">'
            '<span aria-hidden="true">?</span>'
            f'<span class="visually-hidden">{about}</span></button>'
            f'<span class="help-tip" role="tooltip" id="{anchor}">'
            f"{html_escape(component.description)}</span>"
        )
    head = (
        f'<div class="component-head"><span class="component-name">{name}</span>'
        f"{internal_mark(component.is_internal)}{help_tip}"
        f'<span class="status-text tone-{tone_name}"><svg class="icon" aria-hidden="true" '
        f'focusable="false"><use href="#i-{tone_name}"></use></svg>'
        f"{html_escape(component.get_status_display())}</span></div>"
    )
    bar = ""
    if component.showcase:
        uptime = row.uptime_percent
        with_uptime = (
            None if uptime is None else gettext("%(percent)s uptime") % {"percent": percent(uptime)}
        )
        figure = with_uptime or gettext("No data")
        spoken = with_uptime or gettext("no uptime data")
        over_the_past = gettext("%(name)s: %(uptime)s over the past 90 days.") % {
            "name": name,
            "uptime": spoken,
        }
        # Outside the f-string: xgettext does not see calls inside one.
        days_90, days_30, today = gettext("90 days ago"), gettext("30 days ago"), gettext("Today")
        bar = (
            f"{uptime_bar(row.days, label=component.name)}"
            '<div class="bar-legend" aria-hidden="true"><span><span class="days-90">'
            f'{days_90}</span><span class="days-30">{days_30}'
            "</span></span>"
            '<span class="bar-rule"></span>'
            f'<span class="bar-uptime">{figure}</span>'
            f'<span class="bar-rule"></span><span>{today}</span></div>'
            f'<p class="visually-hidden">{over_the_past}</p>'
        )
    return mark_safe(f'<div class="component">{head}{bar}</div>')  # noqa: S308 - escaped


@register.filter
def ago(moment: datetime | None) -> str:
    """ "12 minutes ago", and "just now" under a minute, where Django's timesince would
    say "0 minutes": for the console, where a change a moment ago is the common case."""
    if moment is None:
        return ""
    from django.utils import timezone
    from django.utils.timesince import timesince

    if timezone.now() - moment < timedelta(minutes=1):
        return gettext("just now")
    return gettext("%(time)s ago") % {"time": timesince(moment)}


# The uptime history (/uptime/): a month strip per component, calendars on its own page.


def month_name(month: date) -> str:
    """'March 2026' in the active language (Django's YEAR_MONTH_FORMAT)."""
    return _month_names(month, get_language())[0]


@lru_cache(maxsize=256)
def _month_names(month: date, language: str) -> tuple[str, str]:
    """A month's long and short names in `language` (the active one), escaped for HTML."""
    return (
        formats.date_format(month, "YEAR_MONTH_FORMAT"),
        html_escape(formats.date_format(month, "M")),
    )


@lru_cache(maxsize=4096)
def _uptime_words_in(has_data: bool, uptime: float | None, language: str) -> str:
    if not has_data:
        return gettext("No data")
    if uptime is None:
        return gettext("Under maintenance")
    return gettext("%(percent)s uptime") % {"percent": percent(uptime)}


def _uptime_words(has_data: bool, uptime: float | None) -> str:
    return _uptime_words_in(has_data, uptime, get_language())


@register.filter
def uptime_words(item: "DayUptime | MonthUptime | UptimeHistory") -> str:
    """'99.95% uptime', 'Under maintenance' or 'No data'."""
    return _uptime_words(item.has_data, item.uptime_percent)


@register.filter
def calendar_day_label(day: DayUptime) -> str:
    """A calendar cell's words: date, uptime and the worst status of the day."""
    words = f"{_day_text(day.day)}. {_uptime_words(day.has_data, day.uptime_percent)}."
    if day.worst_status is not None:
        words += " " + gettext("Worst status: %(status)s.") % {
            "status": status_label(day.worst_status)
        }
    return words


@register.simple_tag
def weekday_names() -> list[tuple[str, str]]:
    """(abbreviation, full name) of each weekday from Monday, in the active language."""
    return [(str(WEEKDAYS_ABBR[i]), str(WEEKDAYS[i])) for i in range(7)]


@lru_cache(maxsize=4096)
def _month_item(
    month: date, tone_name: str, has_data: bool, uptime: float | None, language: str
) -> str:
    long_name, short = _month_names(month, language)
    figure = html_escape(percent(uptime) if uptime is not None else "–")
    spoken = html_escape(f"{long_name}: {_uptime_words_in(has_data, uptime, language)}")
    return (
        f'<li class="tone-{tone_name}"><span aria-hidden="true">'
        f'<span class="month-short">{short}</span>'
        f'<span class="month-figure">{figure}</span></span>'
        f'<span class="visually-hidden">{spoken}</span></li>'
    )


@register.simple_tag
def uptime_rows(histories: list[UptimeHistory]) -> SafeString:
    """Each component's line on /uptime/: its name linked to its own page, its uptime over the
    twelve months and a strip of one list item per month, oldest first, coloured by the
    month's worst status. Written in Python for the reason of uptime_bar: a page of 1,000
    components has 12,000 months, and most read alike (cached per month and figures)."""
    language = get_language()
    # One reverse for all: the ids are [a-z0-9] (statuspage.lib.ids), the path the same.
    link = reverse("component-uptime", args=["ID"]).replace("ID", "{}")
    rows = []
    for history in histories:
        component = history.component
        name = html_escape(component.name)
        items = "".join(
            _month_item(
                month.month,
                tone(month.worst_status) if month.has_data else "nodata",
                month.has_data,
                month.uptime_percent,
                language,
            )
            for month in history.months
        )
        overall = _uptime_words_in(history.has_data, history.uptime_percent, language)
        over = gettext("%(uptime)s over 12 months") % {"uptime": overall}
        title = html_escape(gettext("%(label)s: uptime per month") % {"label": component.name})
        rows.append(
            '<li class="uptime-row"><div class="uptime-row-head">'
            f'<a class="component-name" href="{link.format(component.public_id)}">{name}</a>'
            f'<span class="bar-uptime">{html_escape(over)}</span></div>'
            f'<ol class="month-strip" aria-label="{title}">{items}</ol></li>'
        )
    return mark_safe("".join(rows))  # noqa: S308 - escaped


@register.filter
def get_month(incidents: dict[date, list[object]], month: date) -> list[object]:
    """The incidents of one month from a mapping of months to incidents."""
    return incidents.get(month, [])

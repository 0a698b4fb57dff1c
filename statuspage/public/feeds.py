"""History feeds (Atom, RSS) and the maintenance calendar, shaped like Statuspage's.

Feed readers and the parsers written against Statuspage read `<strong>Status</strong> - body`
from each entry's HTML and `Incident/<id>` from its id, so both follow the real feeds
exactly. Everything is built into bytes once per change and served by `public_output`.
"""

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from io import StringIO
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import path
from django.utils import timezone
from django.utils.feedgenerator import Rss201rev2Feed
from django.utils.translation import get_language, gettext
from django.utils.xmlutils import SimplerXMLGenerator
from django.views.decorators.http import require_safe
from icalendar import Calendar, Event, vRecur, vText

from components.models import Component
from incidents.models import Incident, IncidentStatus, IncidentUpdate, MaintenanceSeries
from incidents.selectors import with_timeline
from incidents.series.services import skipped_starts
from statuspage.lib.markdown import markdown_as_plain_text as plain_text
from statuspage.lib.markdown import render_markdown
from statuspage.lib.shared_reads import shared
from statuspage.lib.text import one_line, without_control_characters
from statuspage.models import PageSettings
from statuspage.public.isolation import isolated, plain_incident_html
from statuspage.public.public_http import public_output

FEED_SIZE = 50
CALENDAR_PAST_DAYS = 90
ATOM_TYPE = "application/atom+xml; charset=utf-8"
RSS_TYPE = "application/rss+xml; charset=utf-8"
CALENDAR_TYPE = "text/calendar; charset=utf-8"
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
# XML 1.0 has no place for C0 controls but tab and line ends, lone surrogates, U+FFFE, U+FFFF.
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


# What goes into a feed


@shared
def feed_incidents(component: Component | None = None) -> list[Incident]:
    """The 50 incidents and maintenances announced last, newest first, with their updates."""
    incidents = Incident.objects.public().filter(
        Exists(IncidentUpdate.objects.filter(incident=OuterRef("pk")))
    )
    if component is not None:
        incidents = incidents.filter(components=component)
    return list(with_timeline(incidents).order_by("-created_at", "-id")[:FEED_SIZE])


def incident_url(base_url: str, incident: Incident) -> str:
    return base_url + incident.get_absolute_url()


def xml_text(text: str) -> str:
    """Text without the control characters XML 1.0 cannot carry (a pasted log line may)."""
    return XML_ILLEGAL.sub("", text)


def _host(base_url: str) -> str:
    return urlsplit(base_url).hostname or "localhost"


def _feed_time(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def _small_time(moment: datetime, zone) -> str:
    """`Jun <var data-var='date'> 6</var>, <var data-var='time'>04:43</var> UTC`, as Statuspage."""
    local = moment.astimezone(zone)
    return (
        f"{MONTHS[local.month - 1]} <var data-var='date'>{local.day:>2}</var>, "
        f"<var data-var='time'>{local:%H:%M}</var> {local.tzname()}"
    )


def _inline_body(markdown_text: str) -> str:
    """Sanitised HTML of a body made to sit inside the update's one <p>, as Statuspage's do.

    Paragraphs become `<br /><br />`-separated text; lists and tables stay as they are.
    """
    body = render_markdown(markdown_text)
    body = re.sub(r"\s*</p>\s*<p>\s*", "<br /><br />", body)
    return re.sub(r"\s*</?p>\s*", "", body).strip()


def _paragraph(moment: datetime, label: str, body: str, zone) -> str:
    return (
        f"<p><small>{_small_time(moment, zone)}</small><br>"
        f"<strong>{label}</strong> - {_inline_body(body)}</p>"
    )


def entry_html(incident: Incident, zone) -> str:
    """One <p> per update, newest first; "Update" when an update kept the status it found.

    An incident whose updates cannot be rendered is shown as plain text (public/isolation.py).
    """
    return isolated(
        incident,
        lambda: _entry_html(incident, zone),
        lambda: xml_text(plain_incident_html(incident, link=False)),
    )


def _entry_html(incident: Incident, zone) -> str:
    oldest_first = list(reversed(incident.updates.all()))
    paragraphs = []
    previous = None
    for update in oldest_first:
        label = gettext("Update") if update.status == previous else update.get_status_display()
        paragraphs.append(_paragraph(update.display_at, label, update.body, zone))
        previous = update.status
    if incident.postmortem_published_at and incident.postmortem_body:  # published
        paragraphs.append(
            _paragraph(
                incident.postmortem_published_at,
                str(IncidentStatus.POSTMORTEM.label),
                incident.postmortem_body,
                zone,
            )
        )
    return xml_text("".join(reversed(paragraphs)))


# Atom and RSS


def feed_updated(page: PageSettings, incidents: list[Incident]) -> datetime:
    """When the feed last changed: its newest entry's last update, else the page settings'.

    Never the time of rendering: a feed whose bytes changed at every render would be uploaded
    to the bucket and purged at the CDN after every change to anything public.
    """
    return max((i.updated_at for i in incidents), default=page.updated_at)


def _feed_language() -> str:
    """The feed's language: Statuspage's `en-US` for English, else the language rendered."""
    language = get_language() or "en"
    return "en-US" if language == "en" else language


def _page_link(base_url: str, prefix: str) -> str:
    """The page a feed belongs to: the status page, under the feed's language prefix."""
    return f"{base_url}{prefix}/" if prefix else base_url


def _language_prefix(request: HttpRequest) -> str:
    """`/de` for a feed asked for under a language's prefix (the language middleware handed
    the view the path without it), else "": its own address and page link keep it."""
    if request.META.get("PATH_INFO", request.path_info) == request.path_info:
        return ""
    return "/" + (get_language() or "")


class _RssFeed(Rss201rev2Feed):
    """Django's RSS 2.0 feed with `lastBuildDate` from feed_updated(): Django's own says "now"
    for a feed without items."""

    def __init__(self, *, updated: datetime, title: str, link: str, feed_url: str) -> None:
        super().__init__(
            title=title,
            link=link,
            description=title,
            language=_feed_language().lower(),
            feed_url=feed_url,
        )
        self.updated = updated

    def latest_post_date(self) -> datetime:
        return self.updated


def atom_feed(
    *,
    base_url: str,
    page: PageSettings,
    incidents: Iterable[Incident],
    path: str,
    title: str,
    prefix: str = "",
) -> bytes:
    host = _host(base_url)
    incidents = list(incidents)
    updated = feed_updated(page, incidents)
    out = StringIO()
    xml = SimplerXMLGenerator(out, "utf-8", short_empty_elements=True)
    xml.startDocument()
    # Django's startElement takes a dict (it sorts its items); django-stubs says AttributesImpl.
    language = _feed_language()
    xml.startElement("feed", {"xml:lang": language, "xmlns": "http://www.w3.org/2005/Atom"})  # type: ignore[arg-type]
    xml.addQuickElement("id", f"tag:{host},2005:{prefix}{path.removesuffix('.atom')}")
    xml.addQuickElement(
        "link",
        None,
        {"rel": "alternate", "type": "text/html", "href": _page_link(base_url, prefix)},
    )
    xml.addQuickElement(
        "link",
        None,
        {"rel": "self", "type": "application/atom+xml", "href": base_url + prefix + path},
    )
    xml.addQuickElement("title", one_line(title))
    xml.addQuickElement("updated", _feed_time(updated))
    xml.startElement("author", {})  # type: ignore[arg-type]
    xml.addQuickElement("name", one_line(page.name))
    xml.endElement("author")
    for incident in incidents:
        url = incident_url(base_url, incident)
        xml.startElement("entry", {})  # type: ignore[arg-type]
        xml.addQuickElement("id", f"tag:{host},2005:Incident/{incident.public_id}")
        xml.addQuickElement("published", _feed_time(incident.created_at))
        xml.addQuickElement("updated", _feed_time(incident.updated_at))
        xml.addQuickElement("link", None, {"rel": "alternate", "type": "text/html", "href": url})
        xml.addQuickElement("title", one_line(incident.name))
        xml.addQuickElement("content", entry_html(incident, page.zone), {"type": "html"})
        xml.endElement("entry")
    xml.endElement("feed")
    xml.endDocument()
    return out.getvalue().encode()


def rss_feed(
    *,
    base_url: str,
    page: PageSettings,
    incidents: Iterable[Incident],
    path: str,
    title: str,
    prefix: str = "",
) -> bytes:
    incidents = list(incidents)
    feed = _RssFeed(
        updated=feed_updated(page, incidents),
        title=one_line(title),
        link=_page_link(base_url, prefix),
        feed_url=base_url + prefix + path,
    )
    for incident in incidents:
        url = incident_url(base_url, incident)
        feed.add_item(
            title=one_line(incident.name),
            link=url,
            description=entry_html(incident, page.zone),
            pubdate=incident.created_at,
            updateddate=incident.updated_at,
            unique_id=url,
            unique_id_is_permalink=True,
        )
    return feed.writeString("utf-8").encode()


FORMATS = {"atom": (atom_feed, ATOM_TYPE), "rss": (rss_feed, RSS_TYPE)}


@require_safe
def history_feed(request: HttpRequest, fmt: str) -> HttpResponse:
    write, content_type = FORMATS[fmt]

    def build(base_url: str) -> bytes:
        page = PageSettings.load()
        return write(
            base_url=base_url,
            page=page,
            incidents=feed_incidents(),
            path=f"/history.{fmt}",
            title=gettext("%(name)s Status - Incident History") % {"name": page.name},
            prefix=_language_prefix(request),
        )

    return public_output(request, build, content_type)


@require_safe
def component_history_feed(request: HttpRequest, public_id: str, fmt: str) -> HttpResponse:
    write, content_type = FORMATS[fmt]

    def build(base_url: str) -> bytes:
        # Raised before anything is cached: only real components get a cache entry.
        component = Component.objects.public().filter(public_id=public_id).first()
        if component is None:
            raise Http404("No such component.")
        page = PageSettings.load()
        return write(
            base_url=base_url,
            page=page,
            incidents=feed_incidents(component),
            path=f"/components/{public_id}/history.{fmt}",
            title=gettext("%(name)s Status - %(component)s Incident History")
            % {"name": page.name, "component": component.name},
            prefix=_language_prefix(request),
        )

    return public_output(request, build, content_type)


# The maintenance calendar


def calendar_maintenances(*, now: datetime | None = None) -> QuerySet[Incident]:
    """Upcoming and running maintenances, and those completed in the last 90 days.

    An occurrence of a public series is left out unless staff edited it alone: its series'
    event (RRULE) stands for it, and an edited one is that event's RECURRENCE-ID.
    """
    now = now or timezone.now()
    return with_timeline(
        Incident.objects.public()
        .maintenances()
        .select_related("series")
        .filter(scheduled_for__isnull=False, scheduled_until__isnull=False)
        .exclude(series__isnull=False, series__internal=False, series_detached=False)
        .filter(
            Q(
                status__in=[
                    IncidentStatus.SCHEDULED,
                    IncidentStatus.IN_PROGRESS,
                    IncidentStatus.VERIFYING,
                ]
            )
            | Q(
                status=IncidentStatus.COMPLETED,
                resolved_at__gte=now - timedelta(days=CALENDAR_PAST_DAYS),
            )
        )
    ).order_by("scheduled_for", "id")


def calendar_series() -> QuerySet[MaintenanceSeries]:
    """The public series, each one event with its rule."""
    return (
        MaintenanceSeries.objects.filter(internal=False)
        .prefetch_related(
            Prefetch("components", queryset=Component.objects.public()),
            # An occurrence staff made internal is skipped in the public calendar.
            Prefetch(
                "occurrences",
                queryset=Incident.objects.filter(internal=True, series_occurrence__isnull=False),
                to_attr="internal_occurrences",
            ),
        )
        .order_by("dtstart", "id")
    )


def series_uid(series: MaintenanceSeries, base_url: str) -> str:
    return f"series-{series.public_id}@{_host(base_url)}"


def series_event(series: MaintenanceSeries, *, base_url: str) -> Event:
    """A series as one event: DTSTART in its time zone, RRULE and EXDATE."""
    zone = ZoneInfo(series.time_zone)
    lines = []
    if series.body:
        lines.append(plain_text(series.body))
    names = [one_line(component.name) for component in series.components.all()]
    if names:
        lines.append(gettext("Affected: %(names)s") % {"names": ", ".join(names)})
    lines.append(series.repeats_text)
    page_url = _page_link(base_url, "")

    event = Event()
    event.add("uid", series_uid(series, base_url))
    event.add("dtstamp", series.updated_at.astimezone(UTC))
    event.add("last-modified", series.updated_at.astimezone(UTC))
    event.add("created", series.created_at.astimezone(UTC))
    starts = series.dtstart.astimezone(zone)
    event.add("dtstart", starts)
    event.add("dtend", (starts + series.duration).astimezone(zone))
    event.add("rrule", vRecur.from_ical(series.rule))
    hidden = [i.series_occurrence for i in getattr(series, "internal_occurrences", [])]
    skipped = [moment.astimezone(zone) for moment in sorted({*skipped_starts(series), *hidden})]
    if skipped:
        event.add("exdate", skipped)
    event.add("summary", one_line(series.name))
    description = "\n\n".join(lines).replace("\r\n", "\n").replace("\r", "\n")
    event.add("description", without_control_characters(description).replace("\t", " "))
    event.add("url", without_control_characters(page_url, lines=False))
    event.add("status", "CONFIRMED")
    return event


def maintenance_event(incident: Incident, *, base_url: str) -> Event:
    url = incident_url(base_url, incident)
    updates = list(incident.updates.all())
    lines = []
    if updates and updates[0].body:
        body = updates[0].body
        lines.append(isolated(incident, lambda: plain_text(body), lambda: body))
    # Names written before control characters were refused must not break a calendar line.
    names = [one_line(component.name) for component in incident.components.all()]
    if names:
        lines.append(gettext("Affected: %(names)s") % {"names": ", ".join(names)})
    lines.append(url)

    event = Event()
    event.add("uid", f"{incident.public_id}@{_host(base_url)}")
    event.add("dtstamp", incident.updated_at.astimezone(UTC))
    event.add("last-modified", incident.updated_at.astimezone(UTC))
    event.add("created", incident.created_at.astimezone(UTC))
    # Every posted update is a new revision of the event.
    event.add("sequence", max(len(updates) - 1, 0))
    starts, ends = incident.scheduled_for, incident.scheduled_until
    if starts is None or ends is None:  # calendar_maintenances() lists only scheduled ones
        raise ValueError(f"Maintenance {incident.public_id} has no schedule.")
    event.add("dtstart", starts.astimezone(UTC))
    event.add("dtend", ends.astimezone(UTC))
    event.add("summary", one_line(incident.name))
    description = "\n\n".join(lines).replace("\r\n", "\n").replace("\r", "\n")
    event.add("description", without_control_characters(description).replace("\t", " "))
    event.add("url", without_control_characters(url, lines=False))
    event.add("status", "CONFIRMED")
    series = incident.series
    if series is not None and not series.internal and incident.series_occurrence is not None:
        # Edited apart from its series: the series' event, overridden for this start.
        event["uid"] = vText(series_uid(series, base_url))
        event.add(
            "recurrence-id", incident.series_occurrence.astimezone(ZoneInfo(series.time_zone))
        )
    return event


def maintenance_calendar(base_url: str) -> bytes:
    page = PageSettings.load()
    calendar = Calendar()
    calendar.add("prodid", "-//Beacon//Maintenance calendar//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", one_line(gettext("%(name)s maintenance") % {"name": page.name}))
    calendar.add("x-published-ttl", "PT1H")
    for series in calendar_series():
        calendar.add_component(series_event(series, base_url=base_url))
    for incident in calendar_maintenances():
        calendar.add_component(maintenance_event(incident, base_url=base_url))
    calendar.add_missing_timezones()
    return calendar.to_ical()


@require_safe
def maintenance_ics(request: HttpRequest) -> HttpResponse:
    return public_output(request, maintenance_calendar, CALENDAR_TYPE)


urlpatterns = [
    path("history.atom", history_feed, {"fmt": "atom"}, name="history-atom"),
    path("history.rss", history_feed, {"fmt": "rss"}, name="history-rss"),
    path(
        "components/<str:public_id>/history.atom",
        component_history_feed,
        {"fmt": "atom"},
        name="component-history-atom",
    ),
    path(
        "components/<str:public_id>/history.rss",
        component_history_feed,
        {"fmt": "rss"},
        name="component-history-rss",
    ),
    path("maintenance.ics", maintenance_ics, name="maintenance-ics"),
]

"""`POST /reports/`: a visitor says something fails for them ("Having problems?").

The control is part of the status page, a snapshot served alike to everybody, so it carries
no per-visitor CSRF token: statuspage.lib.origin.same_origin checks the browser's own
Sec-Fetch-Site and Origin headers instead (403 otherwise), so another site cannot make its
visitors' browsers report here. A script could post anyway: the rate limit and the folding
of duplicates are what bound it.

The answer never touches PostgreSQL: the components and open incidents come from the API v2
summary snapshot (what the public already sees), the counting from the cache
(components.reports.services). Nothing about the visitor is stored or logged.
"""

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified, QueryDict
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django.utils.translation import get_language, gettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from components.reports.chart import UNAVAILABLE, message_svg
from components.reports.models import Symptom
from components.reports.public_chart import StoredChart, reports_chart_publish, stored_chart
from components.reports.services import OTHER, report_record
from statuspage.lib import ratelimit
from statuspage.lib.htmx import HtmxHttpRequest
from statuspage.lib.origin import same_origin
from statuspage.lib.outage import database_unreachable
from statuspage.lib.text import control_character_error
from statuspage.models import PageSettings
from statuspage.public.snapshots import build, store

logger = logging.getLogger(__name__)

# A form with every component ticked is far below this.
MAX_BODY_BYTES = 8192
MAX_VALUES = 100
# Rendered htmx answers kept per summary version (see PublicView.answers).
MAX_ANSWERS_KEPT = 64
RATE_WINDOW_SECONDS = 60
SUMMARY_KEY = "/api/v2/summary.json"
# Incidents in these states are over: a report about their components is news.
CLOSED_STATUSES = {"resolved", "postmortem", "completed"}


# Django's enum builds these lists anew on every access.
SYMPTOM_CHOICES = Symptom.choices
SYMPTOMS = frozenset(Symptom.values)
# Each answer is for this post alone. A fixed header rather than never_cache, whose date
# arithmetic is a tenth of a report's cost.
NEVER_CACHE = "max-age=0, no-cache, no-store, must-revalidate, private"


class BadReport(Exception):
    pass


@dataclass(frozen=True)
class Choice:
    public_id: str
    name: str
    is_visible: bool = True  # as Component.is_visible, which the status page's form reads


@dataclass(frozen=True)
class Known:
    title: str
    code: str

    @property
    def url(self) -> str:
        # Reversed as the answer is rendered: under the language prefix it is rendered for.
        return reverse("incident-detail", args=[self.code])


@dataclass(frozen=True)
class PublicView:
    """What the summary snapshot says: the components the page shows, those a visitor may
    name (hidden ones too: a page open since one was shown may still name it), open
    incidents."""

    components: list[Choice]
    component_ids: frozenset[str]
    incidents: list[tuple[Known, frozenset[str]]]
    # The htmx answers rendered from this version, by what they say: the thanks (with the
    # incidents known) and the few error messages. Rendering is a fifth of a report's cost.
    answers: dict[tuple[object, ...], str] = field(default_factory=dict, compare=False)


@dataclass
class Answer:
    thanks: bool = False
    error: str = ""
    known: list[Known] = field(default_factory=list)


_parsed: dict[str, PublicView] = {}


def public_view() -> PublicView | None:
    """The summary snapshot, parsed once per version; built when there is none yet (the only
    case that reads PostgreSQL)."""
    snapshot = store.load(SUMMARY_KEY)
    if snapshot is None:
        try:
            snapshot = build.rebuild(SUMMARY_KEY, wait=True)
        except Exception:
            logger.warning("reports: no summary snapshot and none could be built", exc_info=True)
            return None
    if snapshot is None or snapshot.status != 200:
        return None
    parsed = _parsed.get(snapshot.etag)
    if parsed is None:
        summary = json.loads(snapshot.body)
        components = [c for c in summary["components"] if not c.get("group")]
        shown = [
            Choice(public_id=c["id"], name=c["name"])
            for c in components
            if not (c.get("only_show_if_degraded") and c["status"] == "operational")
        ]
        incidents = [
            (
                Known(title=i["name"], code=i["id"]),
                frozenset(c["id"] for c in i.get("components") or []),
            )
            for i in summary["incidents"]
            if i["status"] not in CLOSED_STATUSES
        ]
        parsed = PublicView(
            components=shown,
            component_ids=frozenset(c["id"] for c in components),
            incidents=incidents,
        )
        # One version kept; another thread may clear it meanwhile, which costs a re-parse.
        _parsed.clear()
        _parsed[snapshot.etag] = parsed
    return parsed


def _cached_page() -> PageSettings | None:
    """The page's settings for the full page's header, if the cache has them (no query)."""
    try:
        page = cache.get(PageSettings.CACHE_KEY)
    except Exception:
        return None
    return page if isinstance(page, PageSettings) else None


def _respond(
    request: HtmxHttpRequest, view: PublicView, answer: Answer, status: int
) -> HttpResponse:
    context: dict[str, Any] = {
        "report": answer,
        "report_components": view.components,
        "report_symptoms": SYMPTOM_CHOICES,
    }
    if request.htmx:
        # htmx swaps only 2xx answers: the control with its message replaces itself either way.
        status = 200 if status >= 400 else status
        # Rendered words and links differ by language and by prefix (`/` and `/en/`).
        said = (get_language(), get_script_prefix(), answer.thanks, answer.error, *answer.known)
        body = view.answers.get(said)
        if body is None:
            # The partial reads nothing of the request: its bytes depend on the answer alone.
            body = render_to_string("statuspage/report.html#report-form", context)
            if len(view.answers) < MAX_ANSWERS_KEPT:
                view.answers[said] = body
        return HttpResponse(body, status=status)
    context["page"] = _cached_page()
    return render(request, "statuspage/report.html", context, status=status)


def _too_many(retry_after: int) -> HttpResponse:
    response = HttpResponse(
        gettext("Too many reports from your address: try again in a minute."),
        status=429,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = str(retry_after)
    return response


def _unavailable() -> HttpResponse:
    response = HttpResponse(
        gettext("Reports cannot be taken right now."),
        status=503,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = "60"
    return response


def _declared_length(request: HtmxHttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _parse(request: HtmxHttpRequest, view: PublicView) -> tuple[list[str], str, bool]:
    """The components (public ids or "other"), the symptom and whether the honeypot is
    filled; BadReport with the visitor's message otherwise."""
    # Django reads no more than Content-Length, checked against MAX_BODY_BYTES before.
    try:
        data: QueryDict = request.POST
    except Exception as error:  # a malformed multipart body, too many fields
        raise BadReport(gettext("The report could not be read.")) from error
    if sum(len(values) for _, values in data.lists()) > MAX_VALUES:
        raise BadReport(gettext("The report has too many values."))
    for _, values in data.lists():
        for value in values:
            if control_character_error(value) is not None or len(value) > 200:
                raise BadReport(gettext("The report holds characters or values no form sends."))
    honeypot = bool(data.get("website"))
    picked = list(dict.fromkeys(data.getlist("components")))
    if not picked:
        raise BadReport(gettext("Pick at least one component, or “Something else”."))
    known = view.component_ids
    unknown = [value for value in picked if value != OTHER and value not in known]
    if unknown:
        raise BadReport(
            gettext("A component picked is not on this page (any more): reload the page.")
        )
    symptoms = data.getlist("symptom")
    if len(symptoms) > 1:
        raise BadReport(gettext("Pick one symptom at most."))
    symptom = symptoms[0] if symptoms else ""
    if symptom and symptom not in SYMPTOMS:
        raise BadReport(gettext("That symptom is not one of the choices."))
    return picked, symptom, honeypot


@csrf_exempt  # the check is same_origin(): the page that holds the form is a shared snapshot
@require_POST
def report(request: HtmxHttpRequest) -> HttpResponse:
    response = _answer(request)
    response["Cache-Control"] = NEVER_CACHE
    return response


def _answer(request: HtmxHttpRequest) -> HttpResponse:
    if not same_origin(request):
        return HttpResponse(
            gettext("Reports are accepted from this status page only."),
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    address = ratelimit.client_ip(request)
    name = f"reports:{ratelimit.digest(address)}"
    limit, window = settings.BEACON_REPORTS_LIMIT_PER_IP, RATE_WINDOW_SECONDS
    view = public_view()
    if view is None:
        return _unavailable()
    try:
        if _declared_length(request) > MAX_BODY_BYTES:
            raise BadReport(gettext("The report is too large."))
        picked, symptom, honeypot = _parse(request, view)
    except BadReport as error:
        # Refused reports count against the limit too: a flood of them is a flood.
        verdict = ratelimit.hit(name, limit=limit, window=window)
        if not verdict.allowed:
            return _too_many(verdict.retry_after)
        return _respond(request, view, Answer(error=str(error)), 400)
    if honeypot:
        verdict = ratelimit.hit(name, limit=limit, window=window)
        if not verdict.allowed:
            return _too_many(verdict.retry_after)
    else:
        current = ratelimit.fixed_window(name, limit=limit, window=window)
        try:
            # The limit is counted with the report, in the same round trip to Redis.
            recorded = report_record(
                component_ids=picked,
                symptom=symptom,
                address=address,
                user_agent=request.META.get("HTTP_USER_AGENT", ""),
                now=timezone.now(),
                limit=current if limit > 0 else None,
            )
        except Exception:
            # The cache (Redis) is away: nothing about the visitor in the log line.
            logger.warning("reports: not counted, the cache is unreachable", exc_info=True)
            return _unavailable()
        if recorded.limited:
            return _too_many(current.remaining)
    known = [incident for incident, ids in view.incidents if ids & set(picked)]
    return _respond(request, view, Answer(thanks=True, known=known), 202)


# `GET /reports/chart.svg`: the 24-hour chart the page shows with show_reports_chart

CHART_MAX_AGE = 60  # the chart is rendered once a minute


@require_safe
def chart(request: HttpRequest) -> HttpResponse:
    """The stored chart in the language of the address (page_language: its prefix's, else
    the page's default), without PostgreSQL. Rendered here only when nothing is stored yet
    (a fresh setting, a new host): with the database away, a placeholder chart instead, so
    the page's image is never broken. 404 while the setting is off and nothing is stored."""
    language = get_language()
    stored = stored_chart(language=language)
    if stored is None:
        try:
            page = PageSettings.load()
            if not page.show_reports_chart or language not in page.languages:
                raise Http404("The reports chart is not shown.")
            reports_chart_publish(now=timezone.now())
            stored = stored_chart(language=language)
        except DatabaseError as error:
            if not database_unreachable(error):
                raise
        if stored is None:
            return _chart_response(
                StoredChart(
                    message_svg(str(UNAVAILABLE), str(UNAVAILABLE), standalone=True).encode()
                ),
                0,
            )
    if request.headers.get("If-None-Match") == stored.etag:
        response = HttpResponseNotModified()
        response["ETag"] = stored.etag
        return response
    return _chart_response(stored, CHART_MAX_AGE)


def _chart_response(stored: StoredChart, max_age: int) -> HttpResponse:
    response = HttpResponse(stored.svg, content_type="image/svg+xml")
    response["ETag"] = stored.etag
    response["Cache-Control"] = f"public, max-age={max_age}" if max_age else "no-store"
    return response

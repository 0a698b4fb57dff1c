"""The public pages. Each is rendered once per change and kept as a snapshot.

statuspage.middleware.SnapshotMiddleware answers every read from the snapshot; these views
run only to build one. Live refresh fetches the same page and swaps in `#status-body`: the pages
htmx swaps take an HtmxHttpRequest.
"""

import sys
from functools import lru_cache

from django.conf import settings
from django.core.paginator import EmptyPage
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.template.loader import render_to_string
from django.urls import get_script_prefix
from django.utils.translation import get_language, gettext_lazy
from django.views.decorators.http import require_safe
from django.views.static import serve

from components.reports.models import Symptom
from statuspage.lib.htmx import HtmxHttpRequest
from statuspage.lib.ids import could_be_public_id
from statuspage.lib.outage import database_read_only, database_unreachable
from statuspage.models import PageSettings
from statuspage.public import selectors
from statuspage.public.languages import language_links
from statuspage.public.snapshots import outage
from statuspage.public.snapshots.build import (
    ERROR_CACHE_CONTROL,
    NOT_FOUND_CACHE_CONTROL,
    PAGE_CACHE_CONTROL,
    PAGE_CDN_CACHE_CONTROL,
    RETRY_AFTER_SECONDS,
)


def _render(request: HttpRequest, template: str, context: dict[str, object]) -> HttpResponse:
    page = PageSettings.load()
    context = {"page_zone": page.zone, "language_links": language_links(request), **context}
    response = HttpResponse(render_to_string(template, context))
    response["Cache-Control"] = PAGE_CACHE_CONTROL
    response["CDN-Cache-Control"] = PAGE_CDN_CACHE_CONTROL
    return response


@require_safe
def status_page(request: HtmxHttpRequest) -> HttpResponse:
    return _render(
        request,
        "statuspage/status_page.html",
        {"status_page": selectors.build_status_page(), "report_symptoms": Symptom.choices},
    )


@require_safe
def incident_detail(request: HtmxHttpRequest, code: str) -> HttpResponse:
    incident = selectors.incident_detail(code) if could_be_public_id(code) else None
    if incident is None:
        raise Http404("No incident with this code.")
    return _render(
        request,
        "statuspage/incident_detail.html",
        {"incident": incident, "page": PageSettings.load()},
    )


@require_safe
def history(request: HtmxHttpRequest) -> HttpResponse:
    page_number = request.GET.get("page", "1")
    if not page_number.isdigit() or len(page_number) > 6:
        page_number = "1"
    try:
        paginator_page, months = selectors.incident_history(page_number=int(page_number))
    except EmptyPage:
        raise Http404("There is no such page of history.") from None
    return _render(
        request,
        "statuspage/history.html",
        {"page": PageSettings.load(), "paginator_page": paginator_page, "months": months},
    )


@require_safe
def media(request: HttpRequest, path: str) -> HttpResponseBase:
    """Uploaded logos, for installs without a proxy in front (SERVE_MEDIA)."""
    return serve(request, path, document_root=str(settings.MEDIA_ROOT))


@require_safe
def robots_txt(request: HttpRequest) -> HttpResponse:
    rules = "Disallow: /" if PageSettings.load().hidden_from_search_engines else "Disallow: /admin/"
    return HttpResponse(f"User-agent: *\n{rules}\n", content_type="text/plain")


# Error answers: never cached, JSON on API paths, and a 503 while the database is away.
# None of them reads the database: they are what is left when it is gone.

API_PREFIX = "/api/"
UNAVAILABLE_MESSAGE = gettext_lazy(
    "This status page cannot be shown right now. Please try again in a minute."
)
UNAVAILABLE_WORDS = {
    "title": gettext_lazy("Status temporarily unavailable"),
    "heading": gettext_lazy("Status temporarily unavailable"),
    "message": UNAVAILABLE_MESSAGE,
}
READ_ONLY_MESSAGE = gettext_lazy(
    "This copy of the status page is read-only: its database is a standby of the primary "
    "region's. Make changes in the primary region, or here once this region's database has "
    "been promoted."
)
READ_ONLY_WORDS = {
    "title": gettext_lazy("Read-only copy"),
    "heading": gettext_lazy("This copy of the status page is read-only"),
    "message": READ_ONLY_MESSAGE,
}
BAD_REQUEST_WORDS = {
    "title": gettext_lazy("Bad request"),
    "heading": gettext_lazy("Bad request"),
    "message": gettext_lazy("This address cannot be answered as it was asked."),
}


def _error(request: HttpRequest, status: int, message: str, html: str) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        # The management API's error shape (statuspage/api_v1/base.py); clients read either key.
        return JsonResponse({"error": message, "message": message}, status=status)
    return HttpResponse(html, status=status)


@lru_cache(maxsize=32)
def _not_found_page(language: str, script_prefix: str) -> str:
    return render_to_string("404.html")


def _not_found_html() -> str:
    """The 404 page in the active language, with links under the active prefix."""
    return _not_found_page(get_language(), get_script_prefix())


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404, and made-up public URLs answered without the database."""
    response = _error(request, 404, "Not found.", _not_found_html())
    response["Cache-Control"] = NOT_FOUND_CACHE_CONTROL
    return response


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    response = _error(request, 400, "Bad request.", render_to_string("500.html", BAD_REQUEST_WORDS))
    response["Cache-Control"] = ERROR_CACHE_CONTROL
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a 503 with Retry-After when the database is unreachable or refuses a
    write as a standby's, else a 500."""
    error = sys.exc_info()[1]
    if database_read_only(error):
        html = render_to_string("500.html", READ_ONLY_WORDS)
        response = _error(request, 503, str(READ_ONLY_MESSAGE), html)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    elif database_unreachable(error):
        outage.note_database_unreachable()
        html = render_to_string("500.html", UNAVAILABLE_WORDS)
        response = _error(request, 503, str(UNAVAILABLE_MESSAGE), html)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    else:
        message = "Something went wrong on our side."
        response = _error(request, 500, message, render_to_string("500.html"))
    response["Cache-Control"] = ERROR_CACHE_CONTROL
    return response

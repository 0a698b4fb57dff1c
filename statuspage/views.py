"""The public pages. Each is rendered once per change and served from the public cache."""

from django.conf import settings
from django.core.paginator import EmptyPage
from django.http import Http404, HttpResponse
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers
from django.views.static import serve

from statuspage import public_cache, selectors
from statuspage.models import PageSettings
from statuspage.templatetags.beacon import format_page_time

LIVE_PARTIAL = "status-body"
# Cached pages are current until the next change, so "last updated" is the time of serving.
SERVED_AT_MARKER = "<!--beacon:served-at-->"


def _render_cached(request, key: str, template: str, build_context) -> HttpResponse:
    page = PageSettings.load()
    today = timezone.now().astimezone(page.zone).date().isoformat()
    if request.htmx:
        template, key = f"{template}#{LIVE_PARTIAL}", f"{key}:partial"

    html = public_cache.cached(
        f"{key}:{today}",
        lambda: render_to_string(
            template,
            {**build_context(), "page_zone": page.zone, "served_at_marker": SERVED_AT_MARKER},
        ),
    )
    if SERVED_AT_MARKER in html:
        html = html.replace(
            SERVED_AT_MARKER, format_page_time(timezone.now(), "datetime", zone=page.zone), 1
        )
    return HttpResponse(html)


@require_safe
@vary_on_headers("HX-Request")
def status_page(request):
    return _render_cached(
        request,
        "status",
        "statuspage/status_page.html",
        lambda: {"status_page": selectors.build_status_page()},
    )


@require_safe
@vary_on_headers("HX-Request")
def incident_detail(request, code: str):
    def build():
        incident = selectors.incident_detail(code)
        if incident is None:
            raise Http404("No incident with this code.")
        return {"incident": incident, "page": PageSettings.load()}

    if not code.isalnum() or len(code) > 12:
        raise Http404("No incident with this code.")
    return _render_cached(request, f"incident:{code}", "statuspage/incident_detail.html", build)


@require_safe
def history(request):
    page_number = request.GET.get("page", "1")
    if not page_number.isdigit() or len(page_number) > 6:
        page_number = "1"

    def build():
        try:
            paginator_page, months = selectors.incident_history(page_number=int(page_number))
        except EmptyPage:
            raise Http404("There is no such page of history.") from None
        return {"page": PageSettings.load(), "paginator_page": paginator_page, "months": months}

    return _render_cached(request, f"history:{page_number}", "statuspage/history.html", build)


@require_safe
def media(request, path: str):
    """Uploaded logos, for installs without a proxy in front (SERVE_MEDIA)."""
    return serve(request, path, document_root=settings.MEDIA_ROOT)


@require_safe
def robots_txt(request):
    rules = "Disallow: /" if PageSettings.load().hidden_from_search_engines else "Disallow: /admin/"
    return HttpResponse(f"User-agent: *\n{rules}\n", content_type="text/plain")

"""The public pages. Each is rendered once per change and kept as a snapshot.

statuspage.middleware.SnapshotMiddleware answers every read from the snapshot; these views
run only to build one. Live refresh fetches the same page and swaps in `#status-body`.
"""

from django.conf import settings
from django.core.paginator import EmptyPage
from django.http import Http404, HttpResponse
from django.template.loader import render_to_string
from django.views.decorators.http import require_safe
from django.views.static import serve

from statuspage import selectors
from statuspage.models import PageSettings
from statuspage.snapshots import PAGE_CACHE_CONTROL, PAGE_CDN_CACHE_CONTROL


def _render(template: str, context: dict) -> HttpResponse:
    page = PageSettings.load()
    response = HttpResponse(render_to_string(template, {"page_zone": page.zone, **context}))
    response["Cache-Control"] = PAGE_CACHE_CONTROL
    response["CDN-Cache-Control"] = PAGE_CDN_CACHE_CONTROL
    return response


@require_safe
def status_page(request):
    return _render("statuspage/status_page.html", {"status_page": selectors.build_status_page()})


@require_safe
def incident_detail(request, code: str):
    incident = selectors.incident_detail(code) if code.isalnum() and len(code) <= 12 else None
    if incident is None:
        raise Http404("No incident with this code.")
    return _render(
        "statuspage/incident_detail.html", {"incident": incident, "page": PageSettings.load()}
    )


@require_safe
def history(request):
    page_number = request.GET.get("page", "1")
    if not page_number.isdigit() or len(page_number) > 6:
        page_number = "1"
    try:
        paginator_page, months = selectors.incident_history(page_number=int(page_number))
    except EmptyPage:
        raise Http404("There is no such page of history.") from None
    return _render(
        "statuspage/history.html",
        {"page": PageSettings.load(), "paginator_page": paginator_page, "months": months},
    )


@require_safe
def media(request, path: str):
    """Uploaded logos, for installs without a proxy in front (SERVE_MEDIA)."""
    return serve(request, path, document_root=settings.MEDIA_ROOT)


@require_safe
def robots_txt(request):
    rules = "Disallow: /" if PageSettings.load().hidden_from_search_engines else "Disallow: /admin/"
    return HttpResponse(f"User-agent: *\n{rules}\n", content_type="text/plain")

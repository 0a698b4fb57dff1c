"""HTTP for the machine-readable public outputs: JSON, feeds, calendar, badges, scripts.

Each is rendered into bytes by its view and kept as a snapshot (statuspage.public.snapshots), which
adds the strong ETag, Last-Modified, 304s and compressed variants when serving it. The view
sets what is particular to the output: its content type, CORS for browsers on other origins
and how long shared caches may keep it.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from statuspage.lib.text import without_control_characters
from statuspage.models import PageSettings
from statuspage.public.snapshots.build import DEFAULT_CACHE_CONTROL


def page_base_url(request: HttpRequest) -> str:
    """The page's public URL without a trailing slash: the setting, else this request's host."""
    # A URL saved before control characters were refused must not break a feed or a header.
    configured = without_control_characters(PageSettings.load().url, lines=False)
    if configured:
        return configured.rstrip("/")
    return f"{request.scheme}://{request.get_host()}"


def public_output(
    request: HttpRequest,
    build: Callable[[str], bytes | str],
    content_type: str,
    *,
    cache_control: str = DEFAULT_CACHE_CONTROL,
) -> HttpResponse:
    """The response for `build(base_url)`, readable from any origin."""
    response = HttpResponse(build(page_base_url(request)), content_type=content_type)
    response["Cache-Control"] = cache_control
    response["Access-Control-Allow-Origin"] = "*"
    return response

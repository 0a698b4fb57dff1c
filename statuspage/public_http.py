"""HTTP for the machine-readable public outputs: JSON, feeds, calendar, badges, scripts.

Each is built once per change into bytes with a strong ETag, served from the public cache
with Last-Modified, a short shared max-age, CORS for browsers on other origins and 304s for
clients that revalidate. The key never includes the query string, so `?foo=1` cannot bypass
the cache.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.http import http_date, parse_http_date_safe, quote_etag

from statuspage import public_cache
from statuspage.models import PageSettings

MAX_AGE_SECONDS = 30


@dataclass(frozen=True)
class CachedOutput:
    body: bytes
    content_type: str
    etag: str
    last_modified: int


def page_base_url(request: HttpRequest) -> str:
    """The page's public URL without a trailing slash: the setting, else this request's host."""
    configured = PageSettings.load().url
    if configured:
        return configured.rstrip("/")
    return f"{request.scheme}://{request.get_host()}"


def public_output(
    request: HttpRequest,
    key: str,
    build: Callable[[str], bytes | str],
    content_type: str,
    *,
    max_age: int = MAX_AGE_SECONDS,
) -> HttpResponse:
    """Serve `build(base_url)` from the public cache, revalidating with ETag and dates."""
    base_url = page_base_url(request)

    def render(token: str) -> CachedOutput:
        body = build(base_url)
        if isinstance(body, str):
            body = body.encode()
        return CachedOutput(
            body=body,
            content_type=content_type,
            etag=quote_etag(hashlib.sha256(body).hexdigest()[:32]),
            last_modified=int(public_cache.changed_at(token)),
        )

    output = public_cache.cached_with_generation(f"{key}@{base_url}", render)
    if _not_modified(request, output):
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(output.body, content_type=output.content_type)
    response["ETag"] = output.etag
    response["Last-Modified"] = http_date(output.last_modified)
    response["Cache-Control"] = f"public, max-age={max_age}"
    response["Access-Control-Allow-Origin"] = "*"
    return response


def _not_modified(request: HttpRequest, output: CachedOutput) -> bool:
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return output.etag in tags or "*" in tags
    since = parse_http_date_safe(request.headers.get("If-Modified-Since", ""))
    return since is not None and output.last_modified <= since

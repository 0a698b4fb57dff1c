"""Posts from the status page itself, without a CSRF token.

The status page is a snapshot served alike to everybody, so a control on it (the visitor
reports, browser push) carries no per-visitor CSRF token. Instead the browser's own headers
are checked: a post whose Sec-Fetch-Site is anything but same-origin, or whose Origin is not
this site, is refused. Browsers set both headers themselves and a page on another site cannot
change them. A request with neither header does not come from a current browser running
someone else's page: a script could send it anyway, and rate limits are what bound it.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest


def same_origin(request: HttpRequest) -> bool:
    """Whether the browser says this post comes from one of this site's own pages."""
    # META rather than request.headers, which builds a dict of every header: this path is hot.
    fetch_site = request.META.get("HTTP_SEC_FETCH_SITE")
    if fetch_site is not None and fetch_site != "same-origin":
        return False
    origin = request.META.get("HTTP_ORIGIN")
    if origin is None:
        return True
    parts = urlsplit(origin)
    try:
        host = request.get_host()
    except Exception:  # DisallowedHost: Django answers 400 for that before views normally
        return False
    ours = {f"{request.scheme}://{host}", *settings.CSRF_TRUSTED_ORIGINS}
    return f"{parts.scheme}://{parts.netloc}" in ours

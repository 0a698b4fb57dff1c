"""Where each public output lives as a file, and how HTML links change in a static copy.

Two users: the snapshot store (snapshots/store.py) writes var/snapshots/files/ with
key_to_file(key) so nginx can serve it (deploy/nginx/beacon.conf), and `manage.py export_static`
writes a complete copy with for_export=True, whose HTML links are made relative so it works
from file:// or a bucket.

No Django imports here: the snapshot store imports this while settings load.
"""

import posixpath
import re
from urllib.parse import parse_qs, urlsplit

EXPORT_INDEX = "index.html"
# History, unprefixed or under a language's prefix ("/de/history/", "/pt-br/history/").
_HISTORY_PATH = re.compile(r"^(?P<prefix>/[a-z]{2}(?:-[a-z]{2})?)?/history/$")


def key_to_file(key: str, *, for_export: bool = False) -> str | None:
    """The path, relative to the files tree, of the snapshot with this key.

    "/" -> "index.html", "/incidents/abc/" -> "incidents/abc/index.html",
    "/api/v2/summary.json" -> "api/v2/summary.json". Keys with a query string have no file
    (None) in the served tree: nginx passes them to Django. For the export only, history pages
    become "history/page/N/index.html" (page 1 is "history/index.html").
    """
    parts = urlsplit(key)
    path = parts.path or "/"
    if not path.startswith("/") or "\\" in path or "\x00" in path:
        raise ValueError(f"Not a snapshot key: {key!r}")
    segments = [s for s in path.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise ValueError(f"Not a snapshot key: {key!r}")

    if parts.query:
        page = _history_page(path, parts.query)
        if page is None:
            raise ValueError(f"Only history pages have a query: {key!r}")
        if not for_export:
            return None
        history = path.strip("/")
        if page == 1:
            return f"{history}/index.html"
        return f"{history}/page/{page}/index.html"

    if path.endswith("/"):
        return "/".join([*segments, EXPORT_INDEX])
    return "/".join(segments)


def _history_page(path: str, query: str) -> int | None:
    if not _HISTORY_PATH.match(path):
        return None
    values = parse_qs(query).get("page", [])
    if len(values) != 1 or not values[0].isdigit():
        return None
    return int(values[0])


# Attributes whose value is one URL, when it is root-relative ("/…", not "//host") or only a
# query ("?page=2", the history pagination). srcset and inline styles are not used by Beacon.
_URL_ATTRIBUTE = re.compile(
    r"""(?P<lead>\s(?:href|src|hx-get|action|poster)\s*=\s*)"""
    r"""(?P<quote>["'])(?P<url>(?:/(?!/)|\?)[^"'<>]*)(?P=quote)""",
    re.IGNORECASE,
)
_EXPORTED_HISTORY_PAGE = re.compile(r"^(?P<history>(?:[a-z-]+/)?history)/page/\d+/index\.html$")
# What needs the live server (the subscribe form) is left out of the static copy.
_LIVE_ONLY = re.compile(r"<!--beacon:live-only-->.*?<!--/beacon:live-only-->\n?", re.DOTALL)


def rewrite_links_for_export(html: str, *, file_path: str) -> str:
    """Make root-relative URLs in html relative to file_path (the file's path in the export).

    Directory URLs gain "index.html" so the copy works without directory indexes
    ("/" -> "../../index.html" from "incidents/abc/index.html"), and history pages point at their
    exported files ("/history/?page=2" -> "page/2/index.html" from "history/index.html").
    Absolute URLs ("https://…", "//cdn…"), fragments and "mailto:" are left alone.
    """
    html = _LIVE_ONLY.sub("", html)
    directory = posixpath.dirname(file_path)
    own_path = export_file_to_path(file_path)

    def replace(match: re.Match) -> str:
        url = match["url"]
        if url.startswith("?"):
            url = own_path + url
        relative = relative_url(url, from_dir=directory)
        return f"{match['lead']}{match['quote']}{relative}{match['quote']}"

    return _URL_ATTRIBUTE.sub(replace, html)


def export_file_to_path(file_path: str) -> str:
    """The URL path of the page exported to file_path, without its query ("/history/")."""
    history_page = _EXPORTED_HISTORY_PAGE.match(file_path)
    if history_page:
        return f"/{history_page['history']}/"
    if file_path == EXPORT_INDEX:
        return "/"
    if file_path.endswith(f"/{EXPORT_INDEX}"):
        return f"/{file_path.removesuffix(EXPORT_INDEX)}"
    return f"/{file_path}"


def relative_url(url: str, *, from_dir: str) -> str:
    """A root-relative URL ("/history/?page=2#x") as a relative one from the directory from_dir."""
    unescaped = url.replace("&amp;", "&")
    parts = urlsplit(unescaped)
    fragment = f"#{parts.fragment}" if parts.fragment else ""
    query = ""
    try:
        if parts.query and _history_page(parts.path, parts.query) is not None:
            target = key_to_file(f"{parts.path}?{parts.query}", for_export=True)
        else:
            target = key_to_file(parts.path, for_export=True)
            query = f"?{parts.query}" if parts.query else ""
    except ValueError:
        return url
    if target is None:  # pragma: no cover - for_export always gives a file
        return url
    relative = posixpath.relpath(target, from_dir or ".")
    result = f"{relative}{query}{fragment}"
    return result.replace("&", "&amp;") if "&amp;" in url else result

"""Languages of the public outputs: the URL prefix that names one, and Accept-Language.

A public output is served in a language by a cookie-free prefix (`/de/history/`), so each
language's rendering is its own snapshot; unprefixed addresses serve the page's default. Which
languages a page enables, and its default, are page settings: they are passed in here.
"""

import re
from functools import lru_cache

from django.conf import settings

# A header longer than this is cut at its last comma before it: nobody prefers 60 languages.
MAX_ACCEPT_LANGUAGE = 1_000
_TAG = re.compile(r"^(?:[a-z]{1,8}(?:-[a-z0-9]{1,8})*|\*)$")
_QUALITY = re.compile(r"^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$")


@lru_cache(maxsize=1)
def shipped() -> tuple[str, ...]:
    """Every language this installation ships, in settings.LANGUAGES's order."""
    return tuple(code.lower() for code, _name in settings.LANGUAGES)


def language_names() -> dict[str, str]:
    """Each shipped language's name in its own language (settings.LANGUAGES)."""
    return {code.lower(): name for code, name in settings.LANGUAGES}


def split_prefix(path: str) -> tuple[str | None, str]:
    """The shipped language a path's first segment names, and the path without it.

    `/de/history/` is ("de", "/history/"); `/history/` and `/de` are (None, path).
    """
    segment, slash, rest = path[1:].partition("/")
    if slash and segment in shipped():
        return segment, "/" + rest
    return None, path


def accepted_languages(header: str) -> list[str]:
    """The language tags of an Accept-Language header, most preferred first, lower case.

    Anything malformed is skipped, tags refused with q=0 are dropped, and equal qualities keep
    the header's order.
    """
    if len(header) > MAX_ACCEPT_LANGUAGE:
        header = header[:MAX_ACCEPT_LANGUAGE].rpartition(",")[0]
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")[:64]):
        tag, _, parameters = item.strip().lower().partition(";")
        tag = tag.strip()
        quality = 1.0
        if parameters:
            name, _, value = parameters.strip().partition("=")
            if name.strip() != "q" or not _QUALITY.match(value.strip()):
                continue
            quality = float(value)
        if quality > 0 and _TAG.match(tag):
            weighted.append((-quality, position, tag))
    return [tag for _quality, _position, tag in sorted(weighted)]


def negotiate(header: str, *, enabled: tuple[str, ...], default: str) -> str:
    """The enabled language a visitor's Accept-Language prefers, else the page's default.

    A region falls back to its language (`de-AT` is `de`) and a language to its first enabled
    region (`pt` is `pt-br`); `*` is the default.
    """
    for tag in accepted_languages(header):
        if tag == "*":
            return default
        if tag in enabled:
            return tag
        primary = tag.partition("-")[0]
        for code in enabled:
            if code == primary or code.partition("-")[0] == primary:
                return code
    return default

"""The language switcher and the hreflang alternates of a public page.

Every enabled language has the page at its prefix; the unprefixed address is the x-default.
Read without PostgreSQL (the snapshot store keeps the page's languages).
"""

from dataclasses import dataclass

from django.core.handlers.wsgi import get_script_name
from django.http import HttpRequest
from django.utils.translation import get_language

from statuspage.lib import languages
from statuspage.models import PageSettings
from statuspage.public.snapshots import keys, store


@dataclass(frozen=True)
class LanguageLink:
    code: str
    name: str  # in its own language
    url: str
    absolute_url: str
    current: bool


@dataclass(frozen=True)
class LanguageLinks:
    links: list[LanguageLink]
    default_url: str  # the unprefixed page: x-default

    @property
    def shown(self) -> bool:
        """Hidden when the page speaks one language."""
        return len(self.links) > 1


def language_links(request: HttpRequest) -> LanguageLinks:
    """The same page in each enabled language, for a request the language middleware saw
    (request.path_info is then the path without its prefix)."""
    _default, enabled = store.page_languages()
    bare = keys.key_for(request.path_info, request.META.get("QUERY_STRING", ""))
    bare = bare or request.path_info
    script_name = get_script_name(request.META)
    names = languages.language_names()
    active = get_language()
    # hreflang wants absolute addresses: where the page is published, when staff said.
    published = PageSettings.load().url.rstrip("/")

    def absolute(path: str) -> str:
        return f"{published}{path}" if published else request.build_absolute_uri(path)

    links = [
        LanguageLink(
            code=code,
            name=names[code],
            url=f"{script_name}/{code}{bare}",
            absolute_url=absolute(f"{script_name}/{code}{bare}"),
            current=code == active,
        )
        for code in enabled
    ]
    return LanguageLinks(links=links, default_url=absolute(script_name + bare))


def language_context(request: HttpRequest) -> dict[str, object]:
    """Context processor: the switcher for pages the language middleware chose a language
    for (public pages and forms; not the admin)."""
    if not hasattr(request, "LANGUAGE_CODE"):
        return {}
    return {"language_links": language_links(request)}

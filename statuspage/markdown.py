"""Markdown written by staff, turned into HTML that is safe to show anyone."""

from functools import lru_cache

import markdown as markdown_lib
import nh3

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h3", "h4", "h5", "h6", "hr",
    "i", "li", "ol", "p", "pre", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead",
    "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "td": {"align"}, "th": {"align"}}


@lru_cache(maxsize=8192)
def render_markdown(text: str) -> str:
    """Safe HTML of `text`. Cached: every rebuild renders the same updates' bodies again (in
    the page, the feeds, the history and each incident page), and they rarely change."""
    html = markdown_lib.markdown(text or "", extensions=["sane_lists", "tables", "nl2br"])
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )

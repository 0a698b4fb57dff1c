"""Markdown written by staff, turned into HTML that is safe to show anyone.

Whoever holds a Responder's API key can write any body the length caps admit, and python-markdown
is pure Python with two weak spots: nested list markers on one line recurse once per marker
("- - - - …" raised RecursionError at about 1 KB), and unclosed brackets ("[[[[…", "![![…",
"[a](" …) rescan the rest of the text for every opener, so 24 KB took a minute. A render runs
inside the page rebuild, the feeds, the incident pages and every subscriber email, so it must
never raise and never hang. Four guards, cheapest first:

1. size: text longer than MAX_MARKDOWN_CHARS is not parsed at all;
2. structure: a block marker nested deeper than MAX_NESTING on one line is escaped, so it
   reads as the character it is instead of opening one more level;
3. time: every processor python-markdown calls first checks a CPU-time budget for this
   render, and gives up past RENDER_BUDGET_SECONDS. The check is cooperative, so it works in
   any thread (gunicorn's, Celery's prefork children, runserver's), where signals and alarms
   would not; each step between two checks is linear in the text, so the overrun is small;
4. raw HTML: blocks are not parsed as HTML, and HTML nested deeper than MAX_HTML_DEPTH never
   reaches nh3 (the text is rendered again with its tags as text).

Whatever goes wrong, the text is shown as escaped plain paragraphs and `render_failed` is sent
once per text and process (the result is cached like any other), so staff can hear of it
without this module knowing who listens.
"""

import html
import logging
import re
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from hashlib import sha256
from typing import Any

import markdown as markdown_lib
import nh3
from django.dispatch import Signal
from django.utils.html import linebreaks, strip_tags
from markdown.extensions import Extension

from statuspage.lib.text import without_control_characters

logger = logging.getLogger("beacon.markdown")

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h3", "h4", "h5", "h6", "hr",
    "i", "li", "ol", "p", "pre", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead",
    "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "td": {"align"}, "th": {"align"}}

# The longest body any form, the API or the config file admits (a postmortem); longer text
# can only be old data, and is shown as plain text rather than parsed.
MAX_MARKDOWN_CHARS = 100_000
# Lists and quotes opened on one line; real text rarely goes past three or four.
MAX_NESTING = 8
# CPU seconds one render may spend in python-markdown. A 100 KB postmortem of ordinary
# markdown takes a fraction of it on a slow machine.
RENDER_BUDGET_SECONDS = 1.0
# Elements open at once in the HTML handed to nh3, which spends time in the depth for every
# tag (20,000 nested <div> took a second, 100,000 a minute, all of it in Rust that no budget
# can stop). Markdown's own nesting stays far below; only raw tags can get there.
MAX_HTML_DEPTH = 100

# Sent with `digest` (sha256 of the text, never the text) and `reason` when a text could not
# be rendered and is shown as plain text.
render_failed = Signal()


class RenderBudgetExceeded(Exception):
    pass


# Most bodies are a few lines, and 8,192 of them cost little to keep; long ones (postmortems,
# up to 100,000 characters) get a cache of their own, so that the caches cannot grow to
# gigabytes.
LONG_TEXT_CHARS = 2_000


def render_markdown(text: str) -> str:
    """Safe HTML of `text`. Cached: every rebuild renders the same updates' bodies again (in
    the page, the feeds, the history and each incident page), and they rarely change. A
    failure is cached like a result, so a process reports a text once."""
    text = text or ""
    return (_render_long if len(text) > LONG_TEXT_CHARS else _render_short)(text)


def markdown_as_plain_text(markdown_text: str) -> str:
    """Text as a calendar or a one-line summary shows it: the rendered Markdown without any
    markup, one line per paragraph, list item or heading."""
    rendered = render_markdown(markdown_text)
    rendered = re.sub(r"<br\s*/?>", "\n", rendered)
    rendered = re.sub(r"</(p|li|h\d|tr|blockquote|pre)>", "\n", rendered)
    text = html.unescape(strip_tags(rendered))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _cache_clear() -> None:
    _render_short.cache_clear()
    _render_long.cache_clear()


render_markdown.cache_clear = _cache_clear  # type: ignore[attr-defined]


def _render(text: str) -> str:
    if len(text) > MAX_MARKDOWN_CHARS:
        return _fallback(text, f"longer than {MAX_MARKDOWN_CHARS} characters")
    try:
        # Control characters mean nothing in Markdown, and python-markdown marks its own
        # placeholders with \x02 and \x03: a text must not forge them.
        source = limit_nesting(without_control_characters(text))
        deadline = time.thread_time() + RENDER_BUDGET_SECONDS
        html_text = _convert(source, deadline)
        if html_depth(html_text) > MAX_HTML_DEPTH:
            # Raw tags left open ("Vec<u8>" a hundred times, or "<div>" on purpose): the
            # same text with every "<" shown as written keeps its Markdown.
            logger.info("markdown rendered without its raw HTML: nested too deep")
            html_text = _convert(source, deadline, raw_html=False)
            if html_depth(html_text) > MAX_HTML_DEPTH:
                return _fallback(text, f"HTML nested deeper than {MAX_HTML_DEPTH}")
        return nh3.clean(
            html_text,
            tags=ALLOWED_TAGS,
            attributes=ALLOWED_ATTRIBUTES,
            url_schemes={"http", "https", "mailto"},
            link_rel="noopener noreferrer nofollow",
        )
    except RenderBudgetExceeded:
        return _fallback(text, f"over the render budget of {RENDER_BUDGET_SECONDS}s")
    except Exception as error:  # RecursionError, a parser bug: the page keeps its text
        return _fallback(text, f"{type(error).__name__}")


_render_short = lru_cache(maxsize=8192)(_render)
_render_long = lru_cache(maxsize=256)(_render)


def _fallback(text: str, reason: str) -> str:
    digest = sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    logger.warning(
        "markdown shown as plain text: %s (%d characters, sha256 %s)", reason, len(text), digest
    )
    # Robust: a listener's failure must not cost the page its text, nor the others their turn.
    for receiver, outcome in render_failed.send_robust(
        sender=render_markdown, digest=digest, reason=reason
    ):
        if isinstance(outcome, Exception):
            logger.warning("render_failed listener %r failed: %r", receiver, outcome)
    # Escaped, as paragraphs at blank lines with line breaks within them.
    return linebreaks(without_control_characters(text), autoescape=True)


# Structure


# A block marker at the start of what is left of a line: a bullet or "1." followed by space,
# or ">" (which needs no space).
_MARKER = re.compile(r"[ \t]*(?:(?:[-*+]|\d{1,9}\.)[ \t]+|>)")
# "* * * * * * * * * *" is a rule, which python-markdown tests before lists: left alone.
# python-markdown's own pattern, its groups atomic so a long line cannot backtrack.
_RULE = re.compile(r"[ ]{0,3}(?:(?>-+[ ]{0,2}){3,}|(?>_+[ ]{0,2}){3,}|(?>\*+[ ]{0,2}){3,})[ ]*")


def limit_nesting(text: str) -> str:
    """`text` with a backslash before the first block marker on a line nested deeper than
    MAX_NESTING: python-markdown then reads the rest of the line as text."""
    if len(text) < 2 * MAX_NESTING:
        return text
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for index, line in enumerate(lines):
        if _RULE.fullmatch(line):
            continue
        position, depth = 0, 0
        while match := _MARKER.match(line, position):
            depth += 1
            if depth > MAX_NESTING:
                marker = match.group().lstrip(" \t")
                at = match.start() + len(match.group()) - len(marker)
                if marker[0].isdigit():
                    at += marker.index(".")
                lines[index] = line[:at] + "\\" + line[at:]
                break
            position = match.end()
    return "\n".join(lines)


_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)")
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}  # fmt: skip


def html_depth(html_text: str) -> int:
    """An upper bound of how many elements are open at once in `html_text`: it counts every
    start tag but void ones as opening and every end tag as closing, whatever their names."""
    depth = deepest = 0
    for match in _TAG.finditer(html_text):
        if match.group(1):
            depth = max(depth - 1, 0)
        elif match.group(2).lower() not in _VOID:
            depth += 1
            deepest = max(deepest, depth)
    return deepest


# Time


class _Budget(Extension):
    """Makes every processor of the Markdown instance check this thread's deadline first.
    Registered last, so it sees the processors the other extensions added. Without
    `raw_html`, inline tags are text too."""

    def __init__(self, *, raw_html: bool) -> None:
        # The markdown package leaves Extension.__init__ unannotated.
        super().__init__()  # type: ignore[no-untyped-call]
        self.raw_html = raw_html

    def extendMarkdown(self, md: markdown_lib.Markdown) -> None:  # noqa: N802 - its API
        def checked(method: Callable[..., Any]) -> Callable[..., Any]:
            def call(*args: Any, **kwargs: Any) -> Any:
                if time.thread_time() > _local.deadline:
                    raise RenderBudgetExceeded
                return method(*args, **kwargs)

            return call

        # Raw HTML blocks go through the standard library's HTML parser, which rescans the
        # rest of the text for every unclosed "<a "; inline tags (<b>, <abbr>, <sup>) still
        # pass, and nh3 keeps only the allowed ones either way.
        md.preprocessors.deregister("html_block")
        if not self.raw_html:
            md.inlinePatterns.deregister("html")
        for registry in (md.preprocessors, md.treeprocessors, md.postprocessors):
            for processor in registry:
                processor.run = checked(processor.run)  # type: ignore[method-assign]
        for block in md.parser.blockprocessors:
            block.test = checked(block.test)  # type: ignore[method-assign]
            block.run = checked(block.run)  # type: ignore[method-assign]
        for pattern in md.inlinePatterns:
            pattern.handleMatch = checked(pattern.handleMatch)  # type: ignore[method-assign]


_local = threading.local()


def _convert(text: str, deadline: float, *, raw_html: bool = True) -> str:
    # One Markdown instance per thread (and kind): building one costs more than most
    # renders, and an instance keeps state while it converts.
    name = "md" if raw_html else "md_without_html"
    md = getattr(_local, name, None)
    if md is None:
        extensions = ["sane_lists", "tables", "nl2br", _Budget(raw_html=raw_html)]
        # The markdown package leaves Markdown.__init__ unannotated.
        md = markdown_lib.Markdown(extensions=extensions)  # type: ignore[no-untyped-call]
    setattr(_local, name, None)  # a render that fails half-way leaves it in no state to reuse
    md.reset()
    _local.deadline = deadline
    result = md.convert(text)
    setattr(_local, name, md)
    return result

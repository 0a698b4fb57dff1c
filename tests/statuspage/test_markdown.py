"""The markdown renderer finishes in bounded time for anything the length caps admit, never
raises, and shows what it cannot render as escaped plain text."""

import logging
import threading
import time

import pytest

from statuspage.lib import markdown
from statuspage.lib.markdown import MAX_MARKDOWN_CHARS, render_markdown

# Far above what a render may take (RENDER_BUDGET_SECONDS plus the linear steps around it)
# and far below the minutes these inputs took, on a machine shared by a whole team.
GENEROUS_SECONDS = 4.0

API_BODY_CAP = 25_000  # statuspage/api_v1/incidents.py


def _repeat(unit: str, length: int) -> str:
    return (unit * (length // len(unit) + 1))[:length]


def _nested_blocks(marker: str, length: int) -> str:
    return _repeat(marker, length - 1) + "x"


BLOCK_MARKERS = [
    "- ", "* ", "+ ", "1. ", "> ", ">", "- > ", "1. - > * ", "-\t", "> 1. ", "-   ", "*    ",
    "-- ", "1.  ",
]  # fmt: skip
INLINE_UNITS = [
    "[", "]", "(", "![", "<", "`", "*", "_", "**", "__", "~", "&", "\\", "[a](", "[](", "![a](",
    "<a ", "<a href=", "[a][", "[a]:", "*a ", "_a", "**a", "`a", "<http://", "<mailto:", "&#",
    "[a](<", "![[](", "](", "<!--", "<b>", "<div>", "<ul><li>", "<blockquote>", "<p>",
]  # fmt: skip


def _line_soup(unit: str, length: int) -> str:
    """The unit on a line of its own, again and again: link references, headings, rules."""
    return _repeat(unit + "\n", length)


def _indented_list(length: int) -> str:
    lines, depth = [], 0
    while sum(len(line) + 1 for line in lines) < length:
        lines.append("    " * depth + "- x")
        depth += 1
    return "\n".join(lines)


def _wide_table(length: int) -> str:
    columns = length // 5
    return "|" + "a|" * columns + "\n|" + "-|" * columns + "\n" + "|" + "b|" * columns


GENERATED = (
    [(f"nested {m!r}", _nested_blocks(m, n)) for m in BLOCK_MARKERS for n in (1_000, 24_000)]
    + [(f"repeated {u!r}", _repeat(u, API_BODY_CAP)) for u in INLINE_UNITS]
    + [(f"lines of {u!r}", _line_soup(u, API_BODY_CAP)) for u in ("[a]: http://x", "# [", "    [")]
    + [
        ("indented list", _indented_list(API_BODY_CAP)),
        ("wide table", _wide_table(API_BODY_CAP)),
        ("brackets then text", "[" * 20_000 + " and then words " * 200),
        ("emphasis run", "*a" * 12_000 + "*"),
        ("unclosed code spans", "`a " * 8_000),
        ("mixed soup", _repeat("- [![<a `*_(", API_BODY_CAP)),
    ]
)


@pytest.fixture(autouse=True)
def _fresh_cache():
    render_markdown.cache_clear()
    yield
    render_markdown.cache_clear()


@pytest.mark.parametrize(("name", "text"), GENERATED, ids=[name for name, _ in GENERATED])
def test_pathological_markdown_renders_in_bounded_time(name, text):
    started = time.perf_counter()
    html = render_markdown(text)
    assert time.perf_counter() - started < GENEROUS_SECONDS, name
    assert isinstance(html, str)  # link references alone render to nothing
    assert "<script" not in html


@pytest.mark.parametrize(
    "text",
    [_repeat("[", MAX_MARKDOWN_CHARS), _repeat("<a ", MAX_MARKDOWN_CHARS),
     _repeat("[a](", MAX_MARKDOWN_CHARS), _nested_blocks("- ", MAX_MARKDOWN_CHARS),
     _repeat("<div>", MAX_MARKDOWN_CHARS), _indented_list(MAX_MARKDOWN_CHARS)],
    ids=["brackets", "open tags", "open links", "nested lists", "raw divs", "indented list"],
)  # fmt: skip
def test_postmortem_sized_pathological_markdown_renders_in_bounded_time(text):
    started = time.perf_counter()
    render_markdown(text)
    assert time.perf_counter() - started < GENEROUS_SECONDS


def test_deeply_nested_list_markers_render_as_lists_up_to_the_limit_then_as_text():
    html = render_markdown("- " * 500 + "x")

    assert html.count("<ul>") == markdown.MAX_NESTING
    assert "- - -" in html and "x" in html


def test_nested_markers_that_real_text_uses_still_render():
    html = render_markdown("- a\n    - b\n        1. c\n\n> quote\n> > inner\n\n* * *")

    assert html.count("<ul>") == 2 and "<ol>" in html
    assert html.count("<blockquote>") == 2
    assert "<hr>" in html


@pytest.mark.parametrize("rule", ["- " * 40, "* " * 40, "_ " * 40, "-" * 5_000, "-  " * 40])
def test_a_rule_of_many_markers_stays_a_rule(rule):
    assert render_markdown(rule).strip() == "<hr>"


def test_a_rule_pattern_cannot_backtrack_on_a_long_line():
    started = time.perf_counter()
    markdown.limit_nesting("-" * 50_000 + "x\n" + "- -" * 20_000 + "x")
    assert time.perf_counter() - started < 1


def test_text_the_renderer_gives_up_on_is_shown_escaped_with_its_line_breaks():
    text = "[" * 30_000 + "\n<script>alert(1)</script> & more\n\nsecond paragraph"

    html = render_markdown(text)

    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert "<br>" in html
    assert "<p>second paragraph</p>" in html
    assert "<script" not in html


def test_text_over_the_size_cap_is_shown_as_plain_text_without_parsing():
    text = "**bold** " * (MAX_MARKDOWN_CHARS // 9 + 1)

    html = render_markdown(text)

    assert html.startswith("<p>**bold**")
    assert "<strong>" not in html


def test_a_parser_error_falls_back_to_plain_text(monkeypatch):
    def broken(text, deadline, **kwargs):
        raise RuntimeError("parser bug")

    monkeypatch.setattr(markdown, "_convert", broken)

    assert render_markdown("**a** <b>") == "<p>**a** &lt;b&gt;</p>"


def test_a_recursion_error_falls_back_to_plain_text(monkeypatch):
    def deep(text, deadline, **kwargs):
        raise RecursionError

    monkeypatch.setattr(markdown, "_convert", deep)

    assert render_markdown("- x") == "<p>- x</p>"


def test_a_failed_render_is_logged_and_signalled_once_per_text(caplog):
    heard = []

    def listener(sender, digest, reason, **kwargs):
        heard.append((digest, reason))

    markdown.render_failed.connect(listener)
    # A level of its own: an in-process Celery worker of an earlier test leaves root at ERROR.
    caplog.set_level(logging.WARNING, logger="beacon.markdown")
    try:
        text = "[" * 30_000
        render_markdown(text)
        render_markdown(text)
    finally:
        markdown.render_failed.disconnect(listener)

    assert len(heard) == 1
    digest, reason = heard[0]
    assert len(digest) == 64 and "budget" in reason
    assert "[[[[" not in caplog.text and "plain text" in caplog.text


def test_a_failing_listener_does_not_cost_the_text(caplog):
    def listener(**kwargs):
        raise RuntimeError("listener down")

    markdown.render_failed.connect(listener)
    try:
        html = render_markdown("x" * (MAX_MARKDOWN_CHARS + 1))
    finally:
        markdown.render_failed.disconnect(listener)

    assert html.startswith("<p>xxx")


def test_the_renderer_recovers_after_a_failure():
    render_markdown("[" * 30_000)

    assert render_markdown("**ok**") == "<p><strong>ok</strong></p>"


def test_raw_inline_tags_are_kept_when_allowed_and_block_html_is_not_parsed():
    html = render_markdown("a <b>bold</b> <sup>2</sup>\n\n<div>\n**md**\n</div>")

    assert "<b>bold</b>" in html and "<sup>2</sup>" in html
    assert "<div" not in html and "<strong>md</strong>" in html


def test_renders_in_other_threads_have_their_own_budget():
    results = {}

    def render(key, text):
        results[key] = render_markdown(text)

    threads = [
        threading.Thread(target=render, args=("slow", "[" * 30_000)),
        threading.Thread(target=render, args=("fine", "*fine*")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert results["fine"] == "<p><em>fine</em></p>"
    assert results["slow"].startswith("<p>[[[")


def test_control_characters_cannot_forge_the_parsers_placeholders():
    html = render_markdown("a \x02klzzwxh:0\x03 <b>b</b> \x02wzxhzdk:0\x03 c\x07")

    assert "klzzwxh:0" in html and "\x02" not in html and "\x07" not in html
    assert html.startswith("<p>a ")


def test_short_and_long_texts_are_each_rendered_once_per_process():
    short, long = "**a**", "**a** " * 1_000

    assert render_markdown(short) is render_markdown(short)
    assert render_markdown(long) is render_markdown(long)
    assert markdown._render_long.cache_info().currsize == 1
    assert markdown._render_short.cache_info().currsize == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    ["- " * 500 + "x", "[" * 24_000, "> 1. " * 2_000 + "x"],
    ids=["lists", "brackets", "mixed"],
)
def test_a_hostile_body_posted_through_the_api_leaves_every_output_answering(
    client, manage_api, body
):
    from incidents.notify.channels.email import email_content
    from incidents.notify.models import NotificationEvent

    response = manage_api(
        "post",
        "/incidents",
        {"incident": {"name": "Hostile", "status": "investigating", "body": body}},
    )
    assert response.status_code == 201, response.content
    incident_url = "/incidents/" + response.json()["id"] + "/"

    started = time.perf_counter()
    for url in ("/", incident_url, "/history/", "/history.atom", "/history.rss"):
        assert client.get(url).status_code == 200, url
    subject, text, html = email_content(NotificationEvent.objects.get())
    assert "Hostile" in subject and html
    assert time.perf_counter() - started < 6 * GENEROUS_SECONDS


def test_raw_tags_left_open_lose_their_html_but_keep_their_markdown():
    text = "**Root cause**: a `Vec<u8>` buffer, i.e. Vec<u8> " * 150 + "\n\n<div>" * 50

    html = render_markdown(text)

    assert "<strong>Root cause</strong>" in html and "<code>Vec&lt;u8&gt;</code>" in html
    assert "Vec&lt;u8&gt; " in html


def test_text_nested_too_deep_even_without_raw_html_is_plain_text():
    lines = [f"{'    ' * depth}- item {depth}" for depth in range(120)]

    html = render_markdown("\n".join(lines))

    assert html.startswith("<p>- item 0")

"""Every string a visitor, subscriber or staff member reads in a Beacon template is marked.

The check reads each template with Django's own lexer: text between
{% translate %} / {% blocktranslate %}…{% endblocktranslate %} is marked; every other text
token, once HTML tags, comments, entities and template tags are gone, must hold no letters.
Attribute values people read (alt, title, aria-label, placeholder) count as text, and so do
string literals a template hands to a filter (default:"…") or to an include (with text="…").
"""

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.template.base import Lexer, TokenType

TEMPLATES = Path(django_settings.BASE_DIR) / "templates"
CHECKED = sorted(
    [TEMPLATES / "base.html", TEMPLATES / "404.html", TEMPLATES / "500.html"]
    + list((TEMPLATES / "statuspage").glob("*.html"))
    + list((TEMPLATES / "subscriptions").glob("*.html"))
    + list((TEMPLATES / "emails").glob("*.*"))
    # Beacon's own staff templates; Django's admin translates its own.
    + list((TEMPLATES / "admin").rglob("*.html"))
)
READ_ATTRIBUTES = {"alt", "title", "aria-label", "placeholder"}
# Filter arguments that are formats or separators, never words a reader sees.
FORMAT_FILTERS = {"date", "time", "join", "slice", "local_date", "floatformat"}
# A string literal in {{ … }}, with the filter it is an argument of. Block tags' literals are
# names or formats ({% url 'history' %}, {% page_time x "datetime" %}) except an include's.
LITERAL = re.compile(r"""(?P<filter>\w+)?:?\s*(?P<quote>["'])(?P<text>.*?)(?P=quote)""")
# Text that is not language: the product's own name in "Powered by Beacon" is inside the
# marked sentence; these are the staff templates' CSS classes in body-class blocks, element ids
# handed to an include, a unit beside a dash, and a shell command to copy.
ALLOWED: set[str] = {
    "login",
    "two-factor",
    "app- model-",
    "registration",
    "passkey-register",
    "verification",
    "passkey-verification",
    "ms–",
    "curl -fsS -m 10 --retry 5 -o /dev/null \ncurl -fsS -m 10 --retry 5 -o /dev/null fail/",
}


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [value for name, value in attrs if name in READ_ATTRIBUTES and value]

    handle_startendtag = handle_starttag

    def handle_data(self, data: str) -> None:
        self.found.append(data)


def _has_words(text: str) -> bool:
    return any(character.isalpha() for character in text) and text.strip() not in ALLOWED


def _unmarked_literals(token_contents: str, token_type: TokenType) -> list[str]:
    """String literals in {{ … }} and {% include … with … %} that reach the reader unmarked."""
    if token_type == TokenType.VAR:
        return [
            match["text"]
            for match in LITERAL.finditer(token_contents)
            if match["filter"] not in FORMAT_FILTERS and not token_contents.startswith("_(")
        ]
    if token_contents.startswith("include ") and " with " in token_contents:
        arguments = token_contents.split(" with ", 1)[1]
        return list(re.findall(r"""=\s*["'](.*?)["']""", arguments))
    return []


def unmarked_strings(source: str) -> list[str]:
    """The human-readable strings in a template that no translate tag covers."""
    text_outside: list[str] = []
    literals: list[str] = []
    inside_block_translate = inside_comment = False
    for token in Lexer(source).tokenize():
        name = token.contents.split(" ", 1)[0] if token.token_type == TokenType.BLOCK else ""
        if name in {"blocktranslate", "blocktrans"}:
            inside_block_translate = True
        elif name in {"endblocktranslate", "endblocktrans"}:
            inside_block_translate = False
        elif name == "comment":
            inside_comment = True
        elif name == "endcomment":
            inside_comment = False
        if inside_block_translate or inside_comment:
            continue
        if token.token_type == TokenType.TEXT:
            text_outside.append(token.contents)
        elif token.token_type in (TokenType.VAR, TokenType.BLOCK):
            literals += _unmarked_literals(token.contents, token.token_type)
    parser = _VisibleText()
    parser.feed("".join(text_outside))
    parser.close()
    found = [text.strip() for text in parser.found + literals]
    return [text for text in found if _has_words(text)]


@pytest.mark.parametrize("template", CHECKED, ids=lambda path: str(path.relative_to(TEMPLATES)))
def test_template_text_is_marked_for_translation(template: Path) -> None:
    assert unmarked_strings(template.read_text()) == []


@pytest.mark.parametrize(
    "source, unmarked",
    [
        ("<p>Hello</p>", ["Hello"]),
        ('<img src="x.png" alt="A chart">', ["A chart"]),
        ('<a aria-label="Pagination" href="{% url \'x\' %}">→</a>', ["Pagination"]),
        ('{{ page.name|default:"Status" }}', ["Status"]),
        ('{% include "emails/_button.html" with text="Confirm" %}', ["Confirm"]),
        ("<p>Page {{ n }} of {{ m }}</p>", ["Page  of"]),
        ('<p>{% translate "Hello" %} &middot; <span aria-hidden="true">←</span></p>', []),
        ("{% blocktranslate with n=x %}Page {{ n }}{% endblocktranslate %}", []),
        ('{{ day|date:"M j, Y" }} {% page_time at "datetime" %}<!-- note --> {# why #}', []),
        ('<div class="words here" hx-get="/x/">{% comment %}Words{% endcomment %}</div>', []),
    ],
)
def test_the_check_finds_unmarked_text(source: str, unmarked: list[str]) -> None:
    assert unmarked_strings(source) == unmarked


def test_extraction_finds_the_marked_strings(tmp_path, monkeypatch, settings) -> None:
    """makemessages, as a translator would run it, collects the marked strings into a catalogue."""
    for folder in ("templates", "statuspage", "incidents", "components"):
        (tmp_path / folder).symlink_to(Path(django_settings.BASE_DIR) / folder)
    (tmp_path / "locale").mkdir()
    settings.LOCALE_PATHS = []  # the catalogue goes to the temporary tree, never the project's
    monkeypatch.chdir(tmp_path)
    call_command("makemessages", "--locale", "de", "--symlinks", "--verbosity", "0")

    catalogue = (tmp_path / "locale" / "de" / "LC_MESSAGES" / "django.po").read_text()
    msgids = re.findall(r'^msgid "(.+)"$', catalogue, flags=re.MULTILINE)
    assert len(msgids) > 100
    assert "Subscribe to updates" in msgids
    assert "Confirm your subscription" in msgids
    assert re.search(r'^msgid_plural "', catalogue, flags=re.MULTILINE)

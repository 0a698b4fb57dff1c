"""Every shipped language's catalogue is complete, and the pages render in it.

The strings are extracted from the tree as a translator would (makemessages into a temporary
copy); every one must be in each locale/<language>/LC_MESSAGES/django.po, translated, not fuzzy,
with every plural form the language has, and with the same placeholders and HTML tags as the
English. The rendering tests need the compiled catalogues: tests/conftest.py compiles them.
"""

import ast
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.utils import translation

from components.models import ComponentStatus
from statuspage.lib.local_format import format_date, format_number, format_percent
from statuspage.public import badges, views
from statuspage.templatetags.beacon import percent
from tests.components.factories import ComponentFactory

LOCALE = Path(django_settings.BASE_DIR) / "locale"
SHIPPED = ("de", "es", "fr", "ja", "pt_BR")
PLURAL_FORMS = {"de": 2, "es": 3, "fr": 2, "ja": 1, "pt_BR": 2}
# %(name)s, %s, %d, %% and {name}: what Python fills in, so a translation must keep each.
PLACEHOLDER = re.compile(r"%(?:\(\w+\))?[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrs%]|\{\w*\}")
TAG = re.compile(r"</?([a-zA-Z]+)")


@dataclass
class Entry:
    context: str = ""
    msgid: str = ""
    plural: str | None = None
    strings: dict[int, str] = field(default_factory=dict)
    fuzzy: bool = False

    @property
    def key(self) -> tuple[str, str, str | None]:
        return self.context, self.msgid, self.plural


def read_catalogue(path: Path) -> tuple[dict[str, str], dict[tuple[str, str, str | None], Entry]]:
    """The header's fields and the entries of a .po file (obsolete `#~` entries left out)."""
    entries: list[Entry] = []
    entry, part = Entry(), ""
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if not line.strip():
            if part:
                entries.append(entry)
            entry, part = Entry(), ""
        elif line.startswith("#,"):
            entry.fuzzy = "fuzzy" in line
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            _append(entry, part, ast.literal_eval(line))
        else:
            part, _, rest = line.partition(" ")
            _append(entry, part, ast.literal_eval(rest), start=True)
    header = next(e for e in entries if e.msgid == "" and not e.context)
    fields = dict(line.split(": ", 1) for line in header.strings[0].splitlines() if ": " in line)
    return fields, {e.key: e for e in entries if e is not header}


def _append(entry: Entry, part: str, text: str, *, start: bool = False) -> None:
    if part == "msgctxt":
        entry.context += text
    elif part == "msgid":
        entry.msgid += text
    elif part == "msgid_plural":
        entry.plural = (entry.plural or "") + text
    elif part == "msgstr":
        entry.strings[0] = entry.strings.get(0, "") + text
    elif match := re.fullmatch(r"msgstr\[(\d+)\]", part):
        index = int(match[1])
        entry.strings[index] = entry.strings.get(index, "") + text


def problems(entry: Entry, nplurals: int) -> list[str]:
    """What is wrong with one translated entry, in words."""
    if entry.fuzzy:
        return ["fuzzy"]
    expected_forms = nplurals if entry.plural is not None else 1
    if sorted(entry.strings) != list(range(expected_forms)):
        return [f"{len(entry.strings)} forms, not {expected_forms}"]
    found = []
    for index, text in entry.strings.items():
        english = (
            entry.msgid if entry.plural is None or (index == 0 and nplurals > 1) else entry.plural
        )
        if not text.strip():
            found.append(f"form {index} empty")
        if Counter(PLACEHOLDER.findall(text)) != Counter(PLACEHOLDER.findall(english)):
            found.append(f"form {index} placeholders differ: {text!r}")
        if Counter(TAG.findall(text)) != Counter(TAG.findall(english)):
            found.append(f"form {index} HTML tags differ: {text!r}")
    return found


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> dict[tuple[str, str, str | None], Entry]:
    """Every string makemessages finds in the tree (templates and Python)."""
    tree = tmp_path_factory.mktemp("tree")
    for folder in ("templates", "statuspage", "incidents", "components"):
        (tree / folder).symlink_to(Path(django_settings.BASE_DIR) / folder)
    (tree / "locale").mkdir()
    previous = Path.cwd()
    locale_paths = django_settings.LOCALE_PATHS
    django_settings.LOCALE_PATHS = []  # the catalogue goes to the temporary tree only
    try:
        os.chdir(tree)
        call_command("makemessages", "--locale", "de", "--symlinks", "--verbosity", "0")
    finally:
        os.chdir(previous)
        django_settings.LOCALE_PATHS = locale_paths
    _, entries = read_catalogue(tree / "locale" / "de" / "LC_MESSAGES" / "django.po")
    assert len(entries) > 200
    return entries


def test_every_shipped_language_has_a_catalogue() -> None:
    on_disk = {path.parent.parent.name for path in LOCALE.glob("*/LC_MESSAGES/django.po")}
    assert on_disk == set(SHIPPED)


@pytest.mark.parametrize("language", SHIPPED)
def test_the_catalogue_translates_every_string_of_the_tree(language, extracted) -> None:
    header, entries = read_catalogue(LOCALE / language / "LC_MESSAGES" / "django.po")
    nplurals = int(re.search(r"nplurals=(\d+)", header["Plural-Forms"])[1])
    assert nplurals == PLURAL_FORMS[language]
    assert header["Language"] == language

    missing = [key[1] for key in extracted if key not in entries]
    wrong = {
        key[1]: found
        for key in extracted
        if key in entries
        if (found := problems(entries[key], nplurals))
    }
    assert not missing, f"{language}: {len(missing)} strings not in the catalogue: {missing[:10]}"
    assert not wrong, f"{language}: {wrong}"


@pytest.mark.parametrize(
    "entry, found",
    [
        (Entry(msgid="Save", strings={0: ""}), ["form 0 empty"]),
        (Entry(msgid="Save", strings={0: "Speichern"}, fuzzy=True), ["fuzzy"]),
        (
            Entry(msgid="Hi %(name)s", strings={0: "Hallo %(nom)s"}),
            ["form 0 placeholders differ: 'Hallo %(nom)s'"],
        ),
        (Entry(msgid="Hi %(name)s", strings={0: "Hallo"}), ["form 0 placeholders differ: 'Hallo'"]),
        (
            Entry(msgid="{n} left", strings={0: "{} übrig"}),
            ["form 0 placeholders differ: '{} übrig'"],
        ),
        (
            Entry(msgid='<a href="%(u)s">See</a>', strings={0: '<b href="%(u)s">Sehen</b>'}),
            ["form 0 HTML tags differ: '<b href=\"%(u)s\">Sehen</b>'"],
        ),
        (
            Entry(msgid="%(n)s day", plural="%(n)s days", strings={0: "%(n)s Tag"}),
            ["1 forms, not 2"],
        ),
        (
            Entry(msgid="%(n)s day", plural="%(n)s days", strings={0: "%(n)s Tag", 1: "Tage"}),
            ["form 1 placeholders differ: 'Tage'"],
        ),
        (
            Entry(
                msgid="%(n)s day", plural="%(n)s days", strings={0: "%(n)s Tag", 1: "%(n)s Tage"}
            ),
            [],
        ),
    ],
)
def test_the_check_finds_a_bad_translation(entry, found) -> None:
    assert problems(entry, nplurals=2) == found


def test_a_one_form_language_matches_the_plural_placeholders() -> None:
    entry = Entry(msgid="one hour", plural="%(n)s hours", strings={0: "%(n)s 時間"})
    assert problems(entry, nplurals=1) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "language, words",
    [
        (
            "de",
            ["Alle Systeme betriebsbereit", "Teilausfall", "Komponenten", "vor 90 Tagen", "Heute"],
        ),
        ("fr", ["Tous les systèmes sont opérationnels", "Panne partielle", "Composants"]),
        ("es", ["Todos los sistemas operativos", "Interrupción parcial", "Componentes"]),
        ("ja", ["すべてのシステムが正常に稼働しています", "部分的な障害", "コンポーネント"]),
        ("pt_BR", ["Todos os sistemas operacionais", "Interrupção parcial", "Componentes"]),
    ],
)
def test_the_status_page_renders_in_each_language(language, words) -> None:
    ComponentFactory(name="API", status=ComponentStatus.PARTIAL_OUTAGE)
    ComponentFactory(name="Web", status=ComponentStatus.OPERATIONAL)
    ComponentFactory(name="Mail", status=ComponentStatus.OPERATIONAL)
    request = RequestFactory().get("/")
    with translation.override("en-us"):
        english = views.status_page(request).content.decode()
    with translation.override(language):
        page = views.status_page(request).content.decode()
    for word in words[1:]:
        assert word in page
    assert "Partial outage" in english and "Partial outage" not in page
    assert "Minor Service Outage" in english


@pytest.mark.django_db
def test_the_banner_says_all_is_well_in_each_language() -> None:
    ComponentFactory(name="Web", status=ComponentStatus.OPERATIONAL)
    request = RequestFactory().get("/")
    expected = {
        "en-us": "All Systems Operational",
        "de": "Alle Systeme betriebsbereit",
        "fr": "Tous les systèmes sont opérationnels",
        "es": "Todos los sistemas operativos",
        "ja": "すべてのシステムが正常に稼働しています",
        "pt-br": "Todos os sistemas operacionais",
    }
    for language, banner in expected.items():
        with translation.override(language):
            assert banner in views.status_page(request).content.decode(), language


@pytest.mark.parametrize(
    "language, moment, day, uptime, count",
    [
        ("en-us", "Dec 5, 2026 14:30 UTC", "Dec 5, 2026", "99.95%", "12,345.5"),
        ("de", "5. Dez 2026, 14:30 UTC", "5. Dez 2026", "99,95\u00a0%", "12.345,5"),
        ("fr", "5 décembre 2026 14:30 UTC", "5 décembre 2026", "99,95\u00a0%", "12\u00a0345,5"),
        ("es", "5 dic 2026 14:30 UTC", "5 dic 2026", "99,95\u00a0%", "12\u00a0345,5"),
        ("ja", "2026年12月5日 14:30 UTC", "2026年12月5日", "99.95%", "12,345.5"),
        ("pt-br", "5 dez 2026 14:30 UTC", "5 dez 2026", "99,95%", "12.345,5"),
    ],
)
def test_dates_numbers_and_percentages_in_each_locale(language, moment, day, uptime, count) -> None:
    with translation.override(language):
        assert format_number("12,345.5") == count
        assert format_date(datetime(2026, 12, 5, 14, 30, tzinfo=UTC), "datetime") == moment
        assert format_date(date(2026, 12, 5), "date") == day
        assert percent(99.957) == uptime
        assert format_percent("100") in {"100%", "100\u00a0%"}


def test_english_dates_are_the_strftime_forms_they_replaced() -> None:
    moment = datetime(2026, 9, 7, 8, 5, tzinfo=UTC)
    with translation.override("en-us"):
        assert format_date(moment, "datetime") == moment.strftime("%b %-d, %Y %H:%M %Z")
        assert format_date(moment, "datetime_no_zone") == moment.strftime("%b %-d, %Y %H:%M")
        assert format_date(moment, "time") == moment.strftime("%H:%M %Z")
        assert format_date(moment, "day") == moment.strftime("%b %-d")


@pytest.mark.django_db
def test_badges_and_the_embed_notice_speak_the_language() -> None:
    component = ComponentFactory(name="API", status=ComponentStatus.MAJOR_OUTAGE)
    with translation.override("de"):
        assert "Schwerer Ausfall" in badges._component_badge(component.public_id).as_svg()
        script = badges.embed_script()
        assert '"view_status_page": "Statusseite ansehen"' in script
    with translation.override("en-us"):
        assert badges._component_badge(component.public_id).message == "major outage"
        assert badges.embed_script() == badges.EMBED_SCRIPT.read_text()


def test_the_staff_console_speaks_the_language() -> None:
    context = {"status_sources": [], "refresh_seconds": 30, "silences": [], "drafts": []}
    with translation.override("de"):
        html = render_to_string("admin/console/live.html", context)
    assert "Was der Seite widerspricht" in html
    assert "Entwürfe, die auf das Team warten" in html
    assert "What disagrees" not in html


def test_no_translated_call_hides_inside_an_f_string() -> None:
    """xgettext does not look inside f-strings: a gettext() there never reaches a catalogue."""
    hidden = re.compile(r"\{\s*(?:n|p|np)?gettext(?:_lazy)?\(|\{\s*_\(")
    root = Path(django_settings.BASE_DIR)
    found = [
        f"{path.relative_to(root)}:{number}"
        for folder in ("statuspage", "incidents", "components")
        for path in (root / folder).rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if hidden.search(line)
    ]
    assert found == []

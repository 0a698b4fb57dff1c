"""Control characters in text people type: refused where a name is written, dropped where old
data is sent.

A newline in the page name once stopped every subscriber email (the mail library refuses
header injection), broke /maintenance.ics and the feeds. Names reach email headers, file
names, calendar lines and XML, none of which can carry them. Model-free, like ids.py.
"""

import re

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

# C0 (tab, CR and LF included), DEL, C1, the Unicode line and paragraph separators, and the
# bidi embeddings, overrides and isolates, which can make a name read as something else in a
# subject line or a calendar.
_UNICODE = "\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
CONTROL = re.compile(f"[\x00-\x1f{_UNICODE}]")
# In text of several lines (Markdown bodies, descriptions) tab and line feed belong, and a
# carriage return is how browsers send a line end; the rest are still refused.
CONTROL_IN_TEXT = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f{_UNICODE}]")


def _describe(character: str) -> str:
    names = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab"}
    return names.get(character, f"the control character U+{ord(character):04X}")


@deconstructible
class NoControlCharacters:
    """Refuses control characters; `multiline` lets line breaks and tabs through."""

    def __init__(self, multiline: bool = False):
        self.multiline = multiline

    def __call__(self, value: object) -> None:
        found = (CONTROL_IN_TEXT if self.multiline else CONTROL).search(str(value or ""))
        if found:
            raise ValidationError(
                "Remove %(what)s: it cannot appear here.",
                code="control_character",
                params={"what": _describe(found.group())},
            )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoControlCharacters) and other.multiline == self.multiline

    def __hash__(self) -> int:
        return hash(self.multiline)


no_control_characters = NoControlCharacters()
no_control_characters_in_text = NoControlCharacters(multiline=True)


def control_character_error(value: str, *, multiline: bool = False) -> str | None:
    """The message a validator would give for `value`, or None when it is clean."""
    try:
        NoControlCharacters(multiline)(value)
    except ValidationError as error:
        return error.messages[0]
    return None


def one_line(text: str) -> str:
    """`text` as one line for a header or a calendar line: every run of whitespace and
    control characters becomes one space."""
    return " ".join(CONTROL.sub(" ", text or "").split())


def without_control_characters(text: str, *, lines: bool = True) -> str:
    """`text` with every control character dropped, but for line breaks and tabs when
    `lines` (XML 1.0 and calendars cannot carry the others; a URL carries none)."""
    return (CONTROL_IN_TEXT if lines else CONTROL).sub("", text or "")


# A cell starting with one of these is a formula to Excel and LibreOffice.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: one it would run as a formula gains a leading
    apostrophe."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text

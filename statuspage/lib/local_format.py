"""Dates, times and percentages in the active language's own order, words and separators:
Beacon's named formats (statuspage/formats/<locale>/formats.py, FORMAT_MODULE_PATH) beside
Django's. Django's get_format knows only its own names, so Beacon's are looked up here, in
the same modules and the same order (the locale, then its language, then English)."""

from datetime import date, datetime
from functools import lru_cache
from typing import Literal

from django.conf import settings
from django.utils import dateformat
from django.utils.formats import get_format, iter_format_modules
from django.utils.translation import get_language

DateStyle = Literal["datetime", "datetime_no_zone", "time", "date", "day", "day_time"]
ENGLISH = "en"


@lru_cache(maxsize=128)
def named_format(name: str, language: str) -> str:
    for candidate in (language, ENGLISH):
        for module in iter_format_modules(candidate, settings.FORMAT_MODULE_PATH):
            if isinstance(found := getattr(module, name, None), str):
                return found
    raise LookupError(f"No format {name} for {language} or English.")


def _language() -> str:
    return get_language() or settings.LANGUAGE_CODE


def format_date(value: date | datetime, style: DateStyle) -> str:
    """`value` in the active language's form for `style`; a datetime in its own zone."""
    return dateformat.format(value, named_format(f"BEACON_{style.upper()}_FORMAT", _language()))


def format_percent(number: str) -> str:
    """A percentage given as English digits ("99.95"), in the active language ("99,95 %")."""
    digits = number.replace(".", str(get_format("DECIMAL_SEPARATOR")))
    return named_format("BEACON_PERCENT_FORMAT", _language()).format(digits)


def format_number(number: str) -> str:
    """A number given in English form ("1,234.5"), with the active language's separators
    ("1.234,5"): the digits and the rounding stay the English ones."""
    thousands, decimal = str(get_format("THOUSAND_SEPARATOR")), str(get_format("DECIMAL_SEPARATOR"))
    return number.replace(",", "\0").replace(".", decimal).replace("\0", thousands)

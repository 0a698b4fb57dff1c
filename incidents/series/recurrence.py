"""Recurrence rules of maintenance series: read, checked and expanded (RFC 5545 RRULE).

Model-free: a series hands over its rule text, first start, time zone and skipped starts.
A rule is expanded in its time zone's wall-clock (the first start carries the zone), so a
weekly 02:00 Europe/Berlin window is at 02:00 local in winter and in summer; the starts come
back aware, and callers store them in UTC.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice, pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rrulestr
from django.utils.translation import gettext

from statuspage.lib.text import control_character_error

MAX_RULE_LENGTH = 500
MAX_COUNT = 1000
MAX_INTERVAL = 1000
MAX_DURATION = timedelta(days=7)
MIN_GAP = timedelta(hours=1)
# How many starts the gap and duration checks look at.
CHECKED_STARTS = 200
# Parts a rule may have. The time of day comes from the first start (no BYHOUR, BYMINUTE,
# BYSECOND), and the parts whose impossible combinations dateutil searches until year 9999
# one day at a time are left out (BYYEARDAY, BYWEEKNO, and BYMONTHDAY or BYMONTH in a daily
# rule).
ALLOWED_PARTS = {
    "DAILY": {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "WKST"},
    "WEEKLY": {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "WKST"},
    "MONTHLY": {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYSETPOS", "WKST"},
    "YEARLY": {
        "FREQ",
        "INTERVAL",
        "COUNT",
        "UNTIL",
        "BYDAY",
        "BYMONTHDAY",
        "BYMONTH",
        "BYSETPOS",
        "WKST",
    },
}
REFUSED_FREQUENCIES = {"SECONDLY", "MINUTELY", "HOURLY"}
PART = re.compile(r"^[A-Z]+=[A-Z0-9,+\-]+$")
WEEKDAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


class RuleError(ValueError):
    """A rule refused, with the reason staff read (translated)."""


@dataclass(frozen=True)
class Recurrence:
    """A checked rule: its normalised text and the first start in its time zone."""

    text: str
    dtstart: datetime  # aware, in the series' zone

    def rule(self) -> rrule:
        parsed = rrulestr(self.text, dtstart=self.dtstart)
        assert isinstance(parsed, rrule)  # a single RRULE, checked by parse_rule
        return parsed

    @property
    def frequency(self) -> str:
        return parts_of(self.text)["FREQ"]

    def starts_between(
        self, after: datetime, before: datetime, *, skipped: Iterable[datetime] = ()
    ) -> list[datetime]:
        """The starts in [after, before), skipped ones left out, in UTC."""
        skipped_utc = {moment.astimezone(ZoneInfo("UTC")) for moment in skipped}
        starts = self.rule().between(after, before, inc=True)
        return [
            utc
            for utc in (start.astimezone(ZoneInfo("UTC")) for start in starts)
            if utc not in skipped_utc and utc < before
        ]

    def next_starts(
        self, after: datetime, count: int, *, skipped: Iterable[datetime] = ()
    ) -> list[datetime]:
        """The next `count` starts at or after `after`, skipped ones left out, in UTC."""
        skipped_utc = {moment.astimezone(ZoneInfo("UTC")) for moment in skipped}
        found: list[datetime] = []
        rule = self.rule()
        for start in rule.xafter(after, count=count + len(skipped_utc), inc=True):
            utc = start.astimezone(ZoneInfo("UTC"))
            if utc not in skipped_utc:
                found.append(utc)
            if len(found) == count:
                break
        return found


def parts_of(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(";"))


def zone_named(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise RuleError(gettext("Unknown time zone.")) from error


# Starts and ends outside these years are refused: near year 1 or 9999 a conversion between
# zones, or a start plus its window, leaves what datetime can hold.
YEARS = range(1970, 2201)


def parse_rule(
    text: str, *, dtstart: datetime, time_zone: str, duration: timedelta | None = None
) -> Recurrence:
    """Check a rule and return it normalised; RuleError says why it is refused.

    `dtstart` is the first start (aware, or naive in `time_zone`'s wall-clock).
    """
    far = RuleError(gettext("Choose a first start and an end between 1970 and 2200."))
    if dtstart.year not in YEARS:
        raise far
    try:
        recurrence = _parse_rule(text, dtstart=dtstart, time_zone=time_zone, duration=duration)
        last_end = recurrence.dtstart + (duration or timedelta(0))
    except OverflowError as error:
        raise far from error
    if last_end.year not in YEARS:
        raise far
    return recurrence


def _parse_rule(
    text: str, *, dtstart: datetime, time_zone: str, duration: timedelta | None
) -> Recurrence:
    if refused := control_character_error(text or ""):
        raise RuleError(refused)
    text = (text or "").strip().upper()
    text = text.removeprefix("RRULE:")
    if not text:
        raise RuleError(gettext("Give a recurrence rule."))
    if len(text) > MAX_RULE_LENGTH:
        raise RuleError(gettext("Keep the rule under 500 characters."))
    zone = zone_named(time_zone)
    dtstart = dtstart.replace(tzinfo=zone) if dtstart.tzinfo is None else dtstart.astimezone(zone)
    dtstart = dtstart.replace(second=0, microsecond=0)
    parts: dict[str, str] = {}
    for part in text.split(";"):
        if not PART.match(part):
            raise RuleError(gettext("“%(part)s” is not a part of a rule.") % {"part": part[:40]})
        name, value = part.split("=", 1)
        if name in parts:
            raise RuleError(gettext("%(name)s is given twice.") % {"name": name})
        parts[name] = value
    frequency = parts.get("FREQ", "")
    if frequency in REFUSED_FREQUENCIES:
        raise RuleError(gettext("A maintenance can repeat at most daily."))
    if frequency not in ALLOWED_PARTS:
        raise RuleError(gettext("Choose FREQ=DAILY, WEEKLY, MONTHLY or YEARLY."))
    unknown = sorted(set(parts) - ALLOWED_PARTS[frequency])
    if unknown:
        raise RuleError(
            gettext("A %(frequency)s rule cannot have %(parts)s.")
            % {"frequency": frequency, "parts": ", ".join(unknown)}
        )
    if "COUNT" in parts and "UNTIL" in parts:
        raise RuleError(gettext("Give COUNT or UNTIL, not both."))
    if "COUNT" in parts and not (parts["COUNT"].isdigit() and 0 < int(parts["COUNT"]) <= MAX_COUNT):
        raise RuleError(gettext("COUNT must be between 1 and 1000."))
    if "INTERVAL" in parts and not (
        parts["INTERVAL"].isdigit() and 0 < int(parts["INTERVAL"]) <= MAX_INTERVAL
    ):
        raise RuleError(gettext("INTERVAL must be between 1 and 1000."))
    if "UNTIL" in parts:
        until = _until(parts["UNTIL"], zone)
        if until < dtstart:
            raise RuleError(gettext("UNTIL is before the first start."))
        # dateutil wants UNTIL in UTC when the start carries a zone.
        parts["UNTIL"] = until.astimezone(ZoneInfo("UTC")).strftime("%Y%m%dT%H%M%SZ")
    normalised = ";".join(f"{name}={value}" for name, value in parts.items())
    try:
        parsed = rrulestr(normalised, dtstart=dtstart)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as error:
        raise RuleError(gettext("The rule cannot be read: %(error)s") % {"error": error}) from error
    if not isinstance(parsed, rrule):
        raise RuleError(gettext("Give one RRULE."))
    starts = list(islice(parsed, CHECKED_STARTS))
    if not starts:
        raise RuleError(gettext("The rule gives no occurrences."))
    gaps = [later - earlier for earlier, later in _utc_pairs(starts)]
    if gaps and min(gaps) < MIN_GAP:
        raise RuleError(gettext("The rule gives more than one occurrence an hour."))
    if duration is not None:
        if duration <= timedelta(0):
            raise RuleError(gettext("The duration must be positive."))
        if duration > MAX_DURATION:
            raise RuleError(gettext("A window lasts at most 7 days."))
        if gaps and duration > min(gaps):
            raise RuleError(gettext("Each window must end before the next one starts."))
    return Recurrence(text=normalised, dtstart=dtstart)


def _utc_pairs(starts: list[datetime]):
    return pairwise(start.astimezone(ZoneInfo("UTC")) for start in starts)


def _until(value: str, zone: ZoneInfo) -> datetime:
    """UNTIL as a date, a local date-time or a UTC one (…Z)."""
    formats = {8: "%Y%m%d", 15: "%Y%m%dT%H%M%S", 16: "%Y%m%dT%H%M%SZ"}
    try:
        moment = datetime.strptime(value, formats[len(value)])
    except (KeyError, ValueError) as error:
        raise RuleError(gettext("UNTIL must be a date like 20271231.")) from error
    if value.endswith("Z"):
        return moment.replace(tzinfo=ZoneInfo("UTC"))
    if len(value) == 8:
        moment = moment.replace(hour=23, minute=59, second=59)
    return moment.replace(tzinfo=zone)


def weekly_rule(weekdays: Iterable[str], *, interval: int = 1) -> str:
    """The rule of the admin's "weekly on" choice."""
    days = [day for day in WEEKDAYS if day in set(weekdays)]
    if not days:
        raise RuleError(gettext("Choose at least one weekday."))
    interval_part = f";INTERVAL={interval}" if interval > 1 else ""
    return f"FREQ=WEEKLY{interval_part};BYDAY={','.join(days)}"


def monthly_rule(*, nth: int, weekday: str) -> str:
    """The rule of the admin's "monthly on the nth weekday" choice (-1: the last)."""
    if weekday not in WEEKDAYS or nth not in (1, 2, 3, 4, -1):
        raise RuleError(gettext("Choose which weekday of the month."))
    return f"FREQ=MONTHLY;BYDAY={nth}{weekday}"


def repeats_text(frequency: str, interval: int = 1) -> str:
    """What a visitor reads beside the next occurrence: "Repeats weekly"."""
    if interval > 1:
        every = {
            "DAILY": gettext("Repeats every %(n)s days"),
            "WEEKLY": gettext("Repeats every %(n)s weeks"),
            "MONTHLY": gettext("Repeats every %(n)s months"),
            "YEARLY": gettext("Repeats every %(n)s years"),
        }
        return every.get(frequency, gettext("Repeats")) % {"n": interval}
    once = {
        "DAILY": gettext("Repeats daily"),
        "WEEKLY": gettext("Repeats weekly"),
        "MONTHLY": gettext("Repeats monthly"),
        "YEARLY": gettext("Repeats yearly"),
    }
    return once.get(frequency, gettext("Repeats"))

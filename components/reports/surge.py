"""Is this a surge of visitor reports? The method, free of the database (docs/reports.md).

A component is measured against its own past, never against other components:

- *current*: its reports in the last `window` minutes, the current minute included;
- *weekly*: for each of the past `weeks` weeks in which the component existed, its reports
  in the hour centred on the same minute of that week, scaled to `window` minutes; the
  median of those weeks (one past outage in them does not raise it), 0 with no history;
- *recent*: its reports in the hour just before the window, scaled to `window` minutes.

It surges when `current >= max(floor, factor × max(weekly, recent))`. The weekly baseline
carries the daily and weekly cycle (Monday 9:00 is compared with Mondays 9:00); the recent one
carries slow drift, whether over hours or over weeks, since a rise that takes an hour or more
raises its own baseline as it goes. The floor keeps a quiet component (or a new one, with no
history) from surging on a handful of reports.

`surge_started` and `surge_ended` tell the layers above of surges (incidents/apps.py connects
the staff alert and the draft incident), sent inside the transaction that recorded them with
`surges=[ReportSurge, ...]`.
"""

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.dispatch import Signal

surge_started = Signal()  # sent with surges=[ReportSurge]: staff have not been told yet
surge_ended = Signal()  # sent with surges=[ReportSurge]: quiet for `end_minutes`

# The weekly baseline reads this many minutes around the same minute of each past week, and
# the recent baseline this many minutes before the window.
BASELINE_MINUTES = 60
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class SurgeParameters:
    window_minutes: int = 5
    weeks: int = 4
    floor: int = 10
    factor: float = 4.0
    # A surge ends once it has been below its threshold this long.
    end_minutes: int = 15

    def __post_init__(self) -> None:
        # A floor of 0 would make a surge of no reports at all; a window past the hour
        # would overlap the recent baseline it is compared with.
        if not 1 <= self.window_minutes <= BASELINE_MINUTES:
            raise ValueError(f"REPORT_SURGE_WINDOW_MINUTES must be 1 to {BASELINE_MINUTES}.")
        if self.weeks < 0 or self.floor < 1 or self.factor <= 0 or self.end_minutes < 1:
            raise ValueError(
                "REPORT_SURGE_WEEKS must be 0 or more, REPORT_SURGE_FLOOR and "
                "REPORT_SURGE_END_MINUTES 1 or more, REPORT_SURGE_FACTOR above 0."
            )

    @classmethod
    def from_settings(cls) -> "SurgeParameters":
        from django.conf import settings

        return cls(
            window_minutes=settings.BEACON_REPORT_SURGE_WINDOW_MINUTES,
            weeks=settings.BEACON_REPORT_SURGE_WEEKS,
            floor=settings.BEACON_REPORT_SURGE_FLOOR,
            factor=settings.BEACON_REPORT_SURGE_FACTOR,
            end_minutes=settings.BEACON_REPORT_SURGE_END_MINUTES,
        )


@dataclass(frozen=True)
class Span:
    """Minutes [start, end): `start` and `end` are whole minutes."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Spans:
    window: Span
    recent: Span
    weeks: tuple[Span, ...]  # only the weeks in which the component existed


@dataclass(frozen=True)
class SurgeVerdict:
    current: int
    weekly: float
    recent: float
    threshold: float

    @property
    def surging(self) -> bool:
        return self.current >= self.threshold

    @property
    def usual(self) -> float:
        """What the window usually holds: the baseline the threshold was drawn from."""
        return max(self.weekly, self.recent)


def surge_spans(*, minute: datetime, since: datetime | None, parameters: SurgeParameters) -> Spans:
    """The minutes each part of the method reads, for the minute `minute` (the current one)
    and a component that exists since `since` (None: always, as "something else")."""
    window = Span(
        minute - timedelta(minutes=parameters.window_minutes - 1), minute + timedelta(minutes=1)
    )
    recent = Span(window.start - timedelta(minutes=BASELINE_MINUTES), window.start)
    half = timedelta(minutes=BASELINE_MINUTES // 2)
    weeks = []
    for back in range(1, parameters.weeks + 1):
        centre = minute - back * WEEK
        span = Span(centre - half, centre + half)
        if since is None or since <= span.start:
            weeks.append(span)
    return Spans(window=window, recent=recent, weeks=tuple(weeks))


def surge_verdict(
    *, current: int, weeks: list[int], recent: int, parameters: SurgeParameters
) -> SurgeVerdict:
    """Decide from the sums of the spans (`weeks`: one sum per past week read)."""
    scale = parameters.window_minutes / BASELINE_MINUTES
    weekly = statistics.median(weeks) * scale if weeks else 0.0
    recent_rate = recent * scale
    threshold = max(float(parameters.floor), parameters.factor * max(weekly, recent_rate))
    return SurgeVerdict(current=current, weekly=weekly, recent=recent_rate, threshold=threshold)


def surge_verdict_of_minutes(
    counts: Mapping[datetime, int] | Callable[[datetime], int],
    *,
    minute: datetime,
    since: datetime | None,
    parameters: SurgeParameters,
) -> SurgeVerdict:
    """Decide from per-minute counts (a mapping of minute to count, or a function of it)."""
    count = counts if callable(counts) else (lambda at: counts.get(at, 0))

    def total(span: Span) -> int:
        minutes = int((span.end - span.start).total_seconds() // 60)
        return sum(count(span.start + timedelta(minutes=n)) for n in range(minutes))

    spans = surge_spans(minute=minute, since=since, parameters=parameters)
    return surge_verdict(
        current=total(spans.window),
        weeks=[total(span) for span in spans.weeks],
        recent=total(spans.recent),
        parameters=parameters,
    )

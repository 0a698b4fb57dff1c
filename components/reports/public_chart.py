"""The 24-hour reports chart on the public page (PageSettings.show_reports_chart).

The status page is a snapshot rebuilt on public changes; reports change every minute, so the
chart is an output of its own, `/reports/chart.svg`, which the page references while the
setting is on. The beat task persist-report-counts renders it after copying the counts
(`reports_chart_publish`), once in each of the page's languages, and stores each language's
bytes where a web process reads them without PostgreSQL: in the cache (shared by every host)
and in a file under SNAPSHOT_DIR (for when the cache is away). The view
(statuspage/public/reports.py) serves the copy in its prefix's language
(`/de/reports/chart.svg`; unprefixed, the page's default); it renders only when nothing is
stored, and answers a placeholder chart when it cannot, so the page never shows a broken image.
"""

import contextlib
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.utils import translation

from components.reports.chart import reports_chart_svg
from components.reports.selectors import reports_last_day
from statuspage.lib import languages
from statuspage.lib.files import atomic_write
from statuspage.models import PageSettings

logger = logging.getLogger(__name__)

# One copy per enabled language: the words, numbers and dates are the language's.
CHART_KEY = "beacon:reports:chart:{language}"
CHART_FILE = "reports-chart-{language}.svg"


@dataclass(frozen=True)
class StoredChart:
    svg: bytes

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.svg).hexdigest()[:32] + '"'


def chart_path(*, language: str) -> Path:
    return Path(settings.BEACON_SNAPSHOT_DIR) / CHART_FILE.format(language=language)


def reports_chart_publish(*, now: datetime) -> bool:
    """Render the public chart in each of the page's languages and store each copy that
    changed (new counts, or the hour turned); remove the copies of languages no longer
    enabled, and every copy while the setting is off. Returns whether anything was written."""
    page = PageSettings.load()
    if not page.show_reports_chart:
        return reports_chart_withdraw()
    tallies = reports_last_day(now=now)
    written = False
    for language in page.languages:
        with translation.override(language):
            svg = reports_chart_svg(tallies, zone=page.zone, standalone=True).encode()
        stored = stored_chart(language=language)
        if stored is None or stored.svg != svg:
            _store(svg, language=language)
            written = True
    for language in set(languages.shipped()) - set(page.languages):
        written = _remove(language=language) or written
    return written


def reports_chart_withdraw() -> bool:
    """Forget every language's stored chart (the setting was turned off). Returns whether
    one was there."""
    removed = [_remove(language=language) for language in languages.shipped()]
    return any(removed)


def stored_chart(*, language: str) -> StoredChart | None:
    """The last chart stored in a language: from the cache, or from the disk when the cache
    is away."""
    try:
        svg = cache.get(CHART_KEY.format(language=language))
    except Exception:
        logger.debug("cache unavailable; reading the reports chart from disk", exc_info=True)
    else:
        if svg is not None:
            return StoredChart(svg)
    try:
        return StoredChart(chart_path(language=language).read_bytes())
    except OSError:
        return None


def _store(svg: bytes, *, language: str) -> None:
    try:
        cache.set(CHART_KEY.format(language=language), svg, None)
    except Exception:
        logger.warning("could not store the reports chart in the cache", exc_info=True)
    atomic_write(chart_path(language=language), svg)


def _remove(*, language: str) -> bool:
    had = stored_chart(language=language) is not None
    with contextlib.suppress(Exception):
        cache.delete(CHART_KEY.format(language=language))
    with contextlib.suppress(FileNotFoundError):
        chart_path(language=language).unlink()
    return had

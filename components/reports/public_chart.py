"""The 24-hour reports chart on the public page (PageSettings.show_reports_chart).

The status page is a snapshot rebuilt on public changes; reports change every minute, so the
chart is an output of its own, `/reports/chart.svg`, which the page references while the
setting is on. The beat task persist-report-counts renders it after copying the counts
(`reports_chart_publish`) and stores the bytes where a web process reads them without
PostgreSQL: in the cache (shared by every host) and in a file under SNAPSHOT_DIR (for when
the cache is away). The view (statuspage/public/reports.py) serves what is stored; it
renders only when nothing is, and answers a placeholder chart when it cannot, so the page
never shows a broken image.
"""

import contextlib
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.cache import cache

from components.reports.chart import reports_chart_svg
from components.reports.selectors import reports_last_day
from statuspage.lib.files import atomic_write
from statuspage.models import PageSettings

logger = logging.getLogger(__name__)

CHART_KEY = "beacon:reports:chart"
CHART_FILE = "reports-chart.svg"


@dataclass(frozen=True)
class StoredChart:
    svg: bytes

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.svg).hexdigest()[:32] + '"'


def chart_path() -> Path:
    return Path(settings.BEACON_SNAPSHOT_DIR) / CHART_FILE


def reports_chart_publish(*, now: datetime) -> bool:
    """Render the public chart and store it when it changed (new counts, or the hour
    turned); withdraw it while the setting is off. Returns whether anything was written."""
    page = PageSettings.load()
    if not page.show_reports_chart:
        return reports_chart_withdraw()
    svg = reports_chart_svg(reports_last_day(now=now), zone=page.zone, standalone=True).encode()
    stored = stored_chart()
    if stored is not None and stored.svg == svg:
        return False
    _store(svg)
    return True


def reports_chart_withdraw() -> bool:
    """Forget the stored chart (the setting was turned off). Returns whether one was there."""
    had = stored_chart() is not None
    with contextlib.suppress(Exception):
        cache.delete(CHART_KEY)
    with contextlib.suppress(FileNotFoundError):
        chart_path().unlink()
    return had


def stored_chart() -> StoredChart | None:
    """The last chart stored: from the cache, or from the disk when the cache is away."""
    try:
        svg = cache.get(CHART_KEY)
    except Exception:
        logger.debug("cache unavailable; reading the reports chart from disk", exc_info=True)
    else:
        if svg is not None:
            return StoredChart(svg)
    try:
        return StoredChart(chart_path().read_bytes())
    except OSError:
        return None


def _store(svg: bytes) -> None:
    try:
        cache.set(CHART_KEY, svg, None)
    except Exception:
        logger.warning("could not store the reports chart in the cache", exc_info=True)
    atomic_write(chart_path(), svg)

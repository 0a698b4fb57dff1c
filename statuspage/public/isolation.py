"""One incident that cannot be rendered must not stop the rest of the page from updating.

Every public output renders each incident through `isolated()` (the `{% isolated %}` template
tag, the feeds, the calendar). When rendering one raises, that incident is shown as plain
text instead (its name and its updates' texts, HTML-escaped), the rest of the output is
built as usual and staff are told once. A database outage is not a rendering bug: it is
re-raised, so the snapshot build can tell it apart (statuspage.lib.outage).
"""

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache
from django.urls import reverse
from django.utils.html import escape, linebreaks
from django.utils.translation import gettext

from incidents.automatic import admin_link, staff_alert
from incidents.models import Incident
from statuspage.lib.outage import database_unreachable

logger = logging.getLogger("beacon.snapshots")
T = TypeVar("T")

REPORTED_KEY = "beacon:render-failed:{}"
# Staff hear of a failing incident once, and again a day later if it still fails: every
# rebuild renders it again (page, history, feeds, its own page), and each would tell them.
REPORT_AGAIN_SECONDS = 24 * 3600

HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}

_reported_here: set[int] = set()  # when the shared cache is away
_reported_lock = threading.Lock()


def isolated(incident: Incident, render: Callable[[], T], fallback: Callable[[], T]) -> T:
    """`render()`, or `fallback()` when it raises anything but a database outage."""
    try:
        return render()
    except Exception as error:
        if database_unreachable(error):
            raise
        report_failure(incident, error)
        return fallback()


def report_failure(incident: Incident, error: BaseException) -> None:
    """Log the failure and tell staff, once per incident (see REPORT_AGAIN_SECONDS)."""
    if not _first_report(incident.pk):
        return
    logger.error(
        "incident %s could not be rendered; it is shown as plain text until it is fixed",
        incident.public_id,
        exc_info=(type(error), error, error.__traceback__),
    )
    try:
        staff_alert(
            subject=f"Incident “{incident.name}” cannot be shown as written",
            text=(
                "The public page shows this incident's updates as plain text because "
                f"rendering them failed ({type(error).__name__}: {error}).\n"
                "Edit its updates, or tell whoever runs Beacon.\n"
                f"{admin_link('admin:incidents_incident_change', incident.pk)}\n"
            ),
        )
    except Exception:
        # A broker or database hiccup while telling staff must not break the page either.
        logger.warning("could not tell staff about incident %s", incident.public_id, exc_info=True)


def _first_report(pk: int) -> bool:
    with _reported_lock:
        seen_here = pk in _reported_here
        _reported_here.add(pk)
    try:
        return bool(cache.add(REPORTED_KEY.format(pk), 1, REPORT_AGAIN_SECONDS))
    except Exception:
        return not seen_here


def plain_text_html(text: str) -> str:
    """Staff's text as it was typed: escaped, with its paragraphs and line breaks."""
    return linebreaks(text or "", autoescape=True)


def plain_incident_html(
    incident: Incident, *, heading: str = "h3", link: bool = True, card: bool = False
) -> str:
    """An incident as plain text: its name (a link to its page, unless on it) and every
    update's status and text, escaped; `card` styles it as the notices it stands in for."""
    heading = heading if heading in HEADINGS else "h3"
    name: str = escape(incident.name)
    if link:
        name = f'<a href="{reverse("incident-detail", args=[incident.public_id])}">{name}</a>'
    classes, title = ("plain-incident notice", "notice-title") if card else ("plain-incident", "")
    parts = [f'<article class="{classes}"><{heading} class="{title}">{name}</{heading}>']
    try:
        for update in incident.updates.all():
            parts.append(
                f'<div class="plain-update"><p><strong>{escape(update.get_status_display())}'
                f"</strong></p>{plain_text_html(update.body)}</div>"
            )
        if incident.has_published_postmortem:
            postmortem = gettext("Postmortem")
            parts.append(
                f'<div class="plain-update"><p><strong>{postmortem}</strong></p>'
                f"{plain_text_html(incident.postmortem_body)}</div>"
            )
    except Exception as error:
        if database_unreachable(error):
            raise
        logger.warning("incident %s: even its plain text failed", incident.public_id)
    parts.append("</article>")
    return "".join(parts)

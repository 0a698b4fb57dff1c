"""What a surge of visitor reports makes: a message to staff and a draft incident.

Surge detection lives in the components layer (components/reports/surge.py) and signals here
(incidents/apps.py connects these receivers) inside the transaction that recorded the surges:
a surge is told once, and its draft exists exactly when its alert was claimed. Staff hear by
email and STAFF_WEBHOOK_URL, with the counts against the usual and the symptoms; when the
page setting `report_surge_drafts` is on, one `investigating` draft names the surging
components the page shows operational that no open incident or waiting draft names yet,
published in one click. A draft whose surges all end before anyone publishes it is discarded.
"""

import logging
from urllib.parse import urljoin

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from components.models import Component, ComponentStatus
from components.reports.models import ReportSurge, Symptom
from components.selectors import components_held
from incidents.automatic import admin_link, staff_alert
from incidents.models import DraftSource, IncidentDraft
from incidents.notify.links import page_base_url
from statuspage.lib.text import one_line
from statuspage.models import PageSettings

logger = logging.getLogger("beacon.automatic")

# The subject of the staff message starts with these words (a benchmark waits for them).
SUBJECT_PREFIX = "Visitors report problems: "
ENDED_SUBJECT_PREFIX = "Reports back to usual: "
SYMPTOM_WORDS = {"none": "no symptom given", **{s.value: str(s.label) for s in Symptom}}
SURGE_STATUS = ComponentStatus.DEGRADED_PERFORMANCE
# The subject names this many components, then says how many more (the text lists them all).
SUBJECT_NAMES = 5


def staff_tell_about_surges(sender: object, *, surges: list[ReportSurge], **kwargs: object) -> None:
    """Listens to components.reports.surge.surge_started."""
    surges = list(
        ReportSurge.objects.filter(pk__in=[s.pk for s in surges]).select_related("component")
    )
    if not surges:
        return
    order = list(
        Component.objects.in_page_order()
        .filter(pk__in=[s.component_id for s in surges])
        .values_list("pk", flat=True)
    )
    # In page order, "something else" last.
    surges.sort(key=lambda s: order.index(s.component_id) if s.component_id else len(order))
    page = PageSettings.load()
    components = [s.component for s in surges if s.component is not None]
    draft = (
        surge_draft_prepare(surges=surges, components=components)
        if page.report_surge_drafts and components
        else None
    )
    names = ", ".join(one_line(s.name) for s in surges[:SUBJECT_NAMES])
    if len(surges) > SUBJECT_NAMES:
        names += f" and {len(surges) - SUBJECT_NAMES} more"
    lines = [f"Visitors report problems with {names}, more than usual:"]
    for surge in surges:
        symptoms = ", ".join(
            f"{SYMPTOM_WORDS.get(symptom, symptom)} {count}"
            for symptom, count in sorted(surge.symptoms.items(), key=lambda item: -item[1])
        )
        lines.append(f"- {surge.summary}" + (f"; {symptoms}" if symptoms else ""))
    if draft is not None:
        lines.append("A draft incident is ready; publish it with one click:")
        link = admin_link("admin:incidents_incidentdraft_change", draft.pk)
    else:
        if components and page.report_surge_drafts:
            lines.append(
                "No draft: the page already shows these components in trouble, or an open "
                "incident or a waiting draft names them."
            )
        lines.append("The staff console shows them, with what the page says:")
        link = urljoin(page_base_url() + "/", reverse("admin:index"))
    staff_alert(subject=SUBJECT_PREFIX + names, text="\n".join(lines) + f"\n{link}\n")
    logger.info("report surge told surges=%s draft=%s", [s.pk for s in surges], draft and draft.pk)


def surge_draft_prepare(
    *, surges: list[ReportSurge], components: list[Component]
) -> IncidentDraft | None:
    """One `investigating` draft for the operational components no open incident or waiting
    draft names."""
    ids = [c.pk for c in components]
    held = components_held(ids)
    waiting = IncidentDraft.objects.filter(published_at=None, discarded_at=None)
    drafted = set(waiting.filter(component_id__in=ids).values_list("component_id", flat=True))
    drafted |= set(
        waiting.filter(other_components__in=ids).values_list("other_components", flat=True)
    )
    # A component the page already shows in trouble is not drafted: the draft is for what
    # the page does not say yet.
    uncovered = [
        c
        for c in components
        if c.pk not in held | drafted and c.status == ComponentStatus.OPERATIONAL
    ]
    if not uncovered:
        return None
    names = ", ".join(one_line(c.name) for c in uncovered)
    reason = "Visitors reported problems: " + "; ".join(
        s.summary for s in surges if s.component in uncovered
    )
    try:
        with transaction.atomic():
            draft = IncidentDraft.objects.create(
                source=DraftSource.REPORT_SURGE,
                component=uncovered[0],
                name=f"Investigating problems with {names}"[:255],
                body=(
                    f"Some of you are having problems with {_and_list(uncovered)}. "
                    "We are investigating and will post an update shortly."
                ),
                component_status=SURGE_STATUS,
                reason=reason[:500],
            )
            draft.other_components.set(uncovered[1:])
            draft.report_surges.set([s for s in surges if s.component in uncovered])
    except IntegrityError:  # a check's draft for its first component, a moment ago
        return None
    return draft


def surge_drafts_discard(sender: object, *, surges: list[ReportSurge], **kwargs: object) -> None:
    """Listens to components.reports.surge.surge_ended: a waiting draft of surges that have
    all ended is discarded (staff may still open an incident themselves)."""
    ended = IncidentDraft.objects.filter(
        source=DraftSource.REPORT_SURGE,
        published_at=None,
        discarded_at=None,
        report_surges__in=[s.pk for s in surges],
    )
    still_surging = IncidentDraft.objects.filter(report_surges__ended_at=None)
    IncidentDraft.objects.filter(pk__in=ended.values("pk")).exclude(
        pk__in=still_surging.values("pk")
    ).update(
        discarded_at=timezone.now(),
        discard_reason="The surge of reports ended before it was published.",
    )


def staff_tell_surges_ended(sender: object, *, surges: list[ReportSurge], **kwargs: object) -> None:
    """Listens to components.reports.surge.surge_ended: staff told of a surge hear that it
    is over, so that no alert is left standing without a word that it passed."""
    told = list(
        ReportSurge.objects.filter(pk__in=[s.pk for s in surges], alerted_at__isnull=False)
        .select_related("component")
        .order_by("started_at", "pk")
    )
    if not told:
        return
    names = ", ".join(one_line(s.name) for s in told[:SUBJECT_NAMES])
    if len(told) > SUBJECT_NAMES:
        names += f" and {len(told) - SUBJECT_NAMES} more"
    lines = [f"Visitors' reports about {names} are back to usual."]
    for surge in told:
        lines.append(
            f"- {one_line(surge.name)}: from {surge.started_at:%H:%M} to "
            f"{surge.last_seen_at:%H:%M} UTC, at most {surge.peak_count} in "
            f"{surge.window_minutes} min ({surge.usual_text})"
        )
    lines.append("The staff console:")
    link = urljoin(page_base_url() + "/", reverse("admin:index"))
    staff_alert(subject=ENDED_SUBJECT_PREFIX + names, text="\n".join(lines) + f"\n{link}\n")


def _and_list(components: list[Component]) -> str:
    names = [one_line(c.name) for c in components]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]

"""Incidents that health checks open and close on their own, and telling staff about it.

Per component (Component.auto_incident): off; draft, an IncidentDraft staff publish with one
click; or publish, an `investigating` incident at once. Recovery posts `resolved` (or
`monitoring`) to the open automatic incident and discards a draft nobody published. A
component never has two open automatic incidents (a partial unique constraint), and staff
hear of every automatic change by email (the Responders and Admins groups) and, when
STAFF_WEBHOOK_URL is set, by a Slack-compatible webhook: at once for the first change, and
in one summary for the changes of the next STAFF_NOTICE_WINDOW, so that a flapping
component sends a message a window rather than one per change.
"""

import logging
from datetime import datetime, timedelta
from functools import partial
from urllib.parse import urljoin

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from components.models import AutoIncident, Component, ComponentStatus, worst_status
from components.status_choices import ComponentStatusValue
from incidents import enqueue
from incidents.models import (
    CLOSED_STATUSES,
    DraftSource,
    Incident,
    IncidentDraft,
    IncidentStatus,
    StaffNotice,
    is_incident_status,
)
from incidents.notify.links import page_base_url
from incidents.services import incident_create, incident_post_update
from statuspage.lib.chat_text import slack_escaped
from statuspage.lib.network import TargetRefused, resolve_blocking
from statuspage.lib.text import one_line
from statuspage.models import PageSettings

logger = logging.getLogger("beacon.automatic")

STAFF_GROUPS = ("Responders", "Admins")

# Per component: after a message to staff, the changes of this long are told in one summary.
STAFF_NOTICE_WINDOW = timedelta(minutes=5)
# A summary lists this many changes, then says how many more there were.
STAFF_NOTICE_LINES = 20
# A component down again this soon after its automatic incident was resolved is the same
# trouble coming back (a slow flap): that incident is reopened rather than a new one opened.
AUTO_INCIDENT_REOPEN_WINDOW = timedelta(minutes=30)


# Who moved the component: the subject of staff emails and the words of incidents.
SOURCES = {"health check": "Health checks", "alert": "Alerts"}


def auto_incident_follow(
    *,
    component: Component,
    old_status: ComponentStatusValue,
    new_status: ComponentStatusValue,
    reason: str,
    source: str = "health check",
) -> Incident | IncidentDraft | None:
    """React to a status change made by health checks or alerts; returns what it made."""
    if new_status == ComponentStatus.OPERATIONAL:
        return _recover(component, old_status=old_status, reason=reason, source=source)
    made: Incident | IncidentDraft | None = None
    if component.auto_incident == AutoIncident.PUBLISH:
        made = _open_incident(component, new_status, reason)
    elif component.auto_incident == AutoIncident.DRAFT:
        made = _prepare_draft(component, new_status, reason, source=source)
    staff_tell_about_change(
        component=component,
        old_status=old_status,
        new_status=new_status,
        reason=reason,
        made=made,
        source=source,
    )
    return made


def auto_incident_on_automatic_move(
    sender: object,
    *,
    component: Component,
    old_status: ComponentStatusValue,
    new_status: ComponentStatusValue,
    reason: str,
    source: str,
    **kwargs: object,
) -> None:
    """Listens to components.status.moved_automatically: checks or alerts moved a component."""
    auto_incident_follow(
        component=component,
        old_status=old_status,
        new_status=new_status,
        reason=reason,
        source=source,
    )


def open_auto_incident(component: Component) -> Incident | None:
    return (
        Incident.objects.filter(auto_component=component)
        .exclude(status__in=CLOSED_STATUSES)
        .first()
    )


def _title(component: Component, status: ComponentStatusValue) -> str:
    # A name saved before control characters were refused, or one near its 255-character
    # limit, must not make the incident's name invalid and stop the automatic incident.
    label = ComponentStatus(status).label.lower()
    suffix = f": {label}"
    return one_line(component.name)[: 255 - len(suffix)] + suffix


def _body(component: Component, status: ComponentStatusValue) -> str:
    label = ComponentStatus(status).label.lower()
    return (
        f"Our monitoring shows {component.name} with a {label}. "
        "We are investigating and will post an update shortly."
    )


def _open_incident(
    component: Component, status: ComponentStatusValue, reason: str
) -> Incident | None:
    if open_auto_incident(component) is not None:
        return None
    recent = (
        Incident.objects.filter(
            auto_component=component,
            status=IncidentStatus.RESOLVED,
            resolved_at__gte=timezone.now() - AUTO_INCIDENT_REOPEN_WINDOW,
            postmortem_published_at=None,  # its story is told: a new episode is a new incident
        )
        .order_by("-resolved_at")
        .first()
    )
    if recent is not None:
        return _reopen_incident(recent, component, status)
    try:
        with transaction.atomic():
            incident = incident_create(
                name=_title(component, status),
                status=IncidentStatus.INVESTIGATING,
                body=_body(component, status),
                component_statuses={component: status},
                auto_component=component,
                # Named after the component: an internal one's incident is internal too.
                internal=component.is_internal,
            )
    except IntegrityError:
        return None  # another worker opened it a moment ago
    logger.info("automatic incident opened component=%s incident=%s", component.pk, incident.pk)
    return incident


def _reopen_incident(
    incident: Incident, component: Component, status: ComponentStatusValue
) -> Incident | None:
    label = ComponentStatus(status).label.lower()
    try:
        with transaction.atomic():
            incident_post_update(
                incident=incident,
                status=IncidentStatus.INVESTIGATING,
                body=f"Our monitoring shows {component.name} with a {label} again. "
                "We are investigating.",
                component_statuses={component: status},
            )
    except IntegrityError:
        return None  # another worker reopened or opened one a moment ago
    incident.refresh_from_db()
    logger.info("automatic incident reopened component=%s incident=%s", component.pk, incident.pk)
    return incident


def _prepare_draft(
    component: Component, status: ComponentStatusValue, reason: str, *, source: str
) -> IncidentDraft | None:
    if open_auto_incident(component) is not None:
        return None
    pending = IncidentDraft.objects.filter(
        component=component, published_at=None, discarded_at=None
    ).first()
    if pending is not None:
        if pending.component_status != status:
            pending.component_status, pending.name = status, _title(component, status)
            pending.body, pending.reason = _body(component, status), reason[:500]
            pending.save(update_fields=["component_status", "name", "body", "reason"])
        return pending
    try:
        with transaction.atomic():
            return IncidentDraft.objects.create(
                source=DraftSource.ALERT if source == "alert" else DraftSource.CHECK,
                component=component,
                name=_title(component, status),
                body=_body(component, status),
                component_status=status,
                reason=reason[:500],
            )
    except IntegrityError:
        return None


def _recover(
    component: Component, *, old_status: ComponentStatusValue, reason: str, source: str
) -> Incident | None:
    incident = open_auto_incident(component)
    if incident is not None:
        recovery = component.auto_incident_recovery  # its choices: resolved or monitoring
        status = recovery if is_incident_status(recovery) else IncidentStatus.RESOLVED
        if incident.status != status:
            incident_post_update(
                incident=incident,
                status=status,
                body=(
                    f"{component.name} is operational again; our monitoring shows it healthy."
                    if status == IncidentStatus.RESOLVED
                    else f"{component.name} is answering again. We are monitoring the results."
                ),
                component_statuses={component: ComponentStatus.OPERATIONAL},
            )
    IncidentDraft.objects.filter(component=component, published_at=None, discarded_at=None).update(
        discarded_at=timezone.now(), discard_reason="It recovered before it was published."
    )
    staff_tell_about_change(
        component=component,
        old_status=old_status,
        new_status=ComponentStatus.OPERATIONAL,
        reason=reason,
        made=incident,
        source=source,
    )
    return incident


def incident_draft_publish(*, draft: IncidentDraft, author=None) -> Incident:
    """Publish a prepared draft as an `investigating` incident (staff's one click), with all
    its components. A check's or an alert's is the component's automatic incident, which
    its recovery resolves; a report surge's is staff's to resolve."""
    with transaction.atomic():
        locked = IncidentDraft.objects.select_for_update().get(pk=draft.pk)
        if locked.published_incident_id:
            return locked.published_incident  # type: ignore[return-value]
        if locked.discarded_at:
            from django.core.exceptions import ValidationError

            raise ValidationError("This draft was discarded: " + locked.discard_reason)
        incident = incident_create(
            name=locked.name,
            status=IncidentStatus.INVESTIGATING,
            body=locked.body,
            component_statuses={
                # A surge's draft never lowers a status set since it was prepared.
                component: worst_status([locked.component_status, component.status])
                if locked.source == DraftSource.REPORT_SURGE
                else locked.component_status
                for component in locked.all_components
            },
            auto_component=(
                None if locked.source == DraftSource.REPORT_SURGE else locked.component
            ),
            # A draft for internal components only (a check's or an alert's on an internal
            # component) names them: it stays internal.
            internal=all(component.is_internal for component in locked.all_components),
            author=author,
        )
        locked.published_incident, locked.published_at, locked.published_by = (
            incident,
            timezone.now(),
            author,
        )
        locked.save(update_fields=["published_incident", "published_at", "published_by"])
    return incident


def incident_draft_discard(*, draft: IncidentDraft, reason: str = "Discarded by staff.") -> None:
    IncidentDraft.objects.filter(pk=draft.pk, published_at=None, discarded_at=None).update(
        discarded_at=timezone.now(), discard_reason=reason[:255]
    )


# Telling staff


def staff_tell_about_change(
    *,
    component: Component,
    old_status: str,
    new_status: str,
    reason: str,
    made: Incident | IncidentDraft | None,
    source: str = "health check",
) -> None:
    old, new = ComponentStatus(old_status).label, ComponentStatus(new_status).label
    subject = f"{component.name}: {new.lower()} ({source})"
    lines = [
        f"{SOURCES.get(source, source)} moved {component.name} from {old} to {new}.",
        f"What they found: {reason}" if reason else "",
    ]
    link = admin_link("admin:components_component_change", component.pk)
    if isinstance(made, IncidentDraft):
        lines.append("A draft incident is ready; publish it with one click:")
        link = admin_link("admin:incidents_incidentdraft_change", made.pk)
    elif isinstance(made, Incident):
        verb = "posted its recovery to" if new_status == ComponentStatus.OPERATIONAL else "opened"
        lines.append(f"Beacon {verb} the incident “{made.name}”:")
        link = admin_link("admin:incidents_incident_change", made.pk)
    text = "\n".join(line for line in lines if line) + f"\n{link}\n"
    if _held_for_summary(component, line=lines[0], reason=reason):
        return
    staff_alert(subject=subject, text=text)


def staff_alert(*, subject: str, text: str, contact: str = "") -> None:
    """Tell staff (email, and STAFF_WEBHOOK_URL when set) once the transaction commits; with
    a `contact`, the email is to them with staff in copy (see staff_email)."""
    transaction.on_commit(
        partial(_enqueue, subject=subject, text=text, contact=contact), robust=True
    )


def _held_for_summary(component: Component, *, line: str, reason: str) -> bool:
    """Whether this change waits for the component's next summary: staff were told of it
    less than STAFF_NOTICE_WINDOW ago (or a summary is already waiting)."""
    now = timezone.now()
    with transaction.atomic():
        StaffNotice.objects.get_or_create(
            component=component, defaults={"sent_at": now - STAFF_NOTICE_WINDOW}
        )
        notice = StaffNotice.objects.select_for_update().get(component=component)
        if notice.held_count == 0 and notice.sent_at + STAFF_NOTICE_WINDOW <= now:
            notice.sent_at = now
            notice.save(update_fields=["sent_at"])
            return False
        entry = {"at": now.isoformat(), "line": line, "reason": reason[:300]}
        notice.held = [*notice.held, entry][-STAFF_NOTICE_LINES:]
        notice.held_count += 1
        notice.save(update_fields=["held", "held_count"])
    return True


def staff_notices_flush(*, now: datetime | None = None) -> int:
    """Send each summary whose window has ended (beat); returns how many were sent."""
    now = now or timezone.now()
    due = StaffNotice.objects.filter(held_count__gt=0, sent_at__lte=now - STAFF_NOTICE_WINDOW)
    sent = 0
    for pk in due.values_list("pk", flat=True):
        with transaction.atomic():
            notice = (
                due.filter(pk=pk)
                .select_for_update(skip_locked=True, of=("self",))
                # the component row is read, not locked: its status is the summary's "now"
                .select_related("component")
                .first()
            )
            if notice is None:  # another worker took it
                continue
            subject, text = _summary(notice)
            notice.held, notice.held_count, notice.sent_at = [], 0, now
            notice.save(update_fields=["held", "held_count", "sent_at"])
            transaction.on_commit(partial(_enqueue, subject=subject, text=text), robust=True)
            sent += 1
    return sent


def _summary(notice: StaffNotice) -> tuple[str, str]:
    component = notice.component
    now_label = ComponentStatus(component.status).label
    count = notice.held_count
    subject = f"{component.name}: {now_label.lower()} after {count} more change(s)"
    lines = [f"{component.name} changed {count} more time(s) since the last message:"]
    for entry in notice.held:
        at = datetime.fromisoformat(entry["at"]).strftime("%H:%M:%S UTC")
        lines.append(
            f"- {at}: {entry['line']}" + (f" {entry['reason']}" if entry["reason"] else "")
        )
    if count > len(notice.held):
        lines.insert(1, f"(the first {count - len(notice.held)} are left out)")
    lines.append(f"Now: {now_label}.")
    incident = open_auto_incident(component)
    draft = IncidentDraft.objects.filter(
        component=component, published_at=None, discarded_at=None
    ).first()
    if incident is not None:
        lines.append(f"Its automatic incident “{incident.name}” is open:")
        link = admin_link("admin:incidents_incident_change", incident.pk)
    elif draft is not None:
        lines.append("A draft incident is ready; publish it with one click:")
        link = admin_link("admin:incidents_incidentdraft_change", draft.pk)
    else:
        link = admin_link("admin:components_component_change", component.pk)
    return subject, "\n".join(lines) + f"\n{link}\n"


# One alert per unrenderable text a day, however many processes and pages render it.
RENDER_FAILURE_ALERT_SECONDS = 24 * 3600


def staff_tell_about_render_failure(*, digest: str, reason: str, **kwargs: object) -> None:
    """Listens to statuspage.lib.markdown.render_failed: some text is shown as plain text."""
    from django.core.cache import cache

    try:
        first = cache.add(f"markdown-failed:{digest}", 1, RENDER_FAILURE_ALERT_SECONDS)
    except Exception:  # the cache is away: an alert too many beats none
        first = True
    if not first:
        return
    subject = "Some text is shown as plain text"
    text = (
        "Beacon could not render a text written in markdown "
        f"({reason}), so the page shows it as plain text instead.\n"
        "Look for an incident update, postmortem, template or footer that shows its markdown "
        f"signs, and shorten or simplify it. Its sha256 is {digest}.\n"
    )
    try:
        staff_alert(subject=subject, text=text)
    except Exception as error:  # the database is away: the page must still render
        logger.warning("could not tell staff of a text shown as plain text: %s", type(error))


def _enqueue(*, subject: str, text: str, contact: str = "") -> None:
    # Two tasks, so that retrying a failed webhook never sends the emails again.
    enqueue.tell_staff_by_email(subject, text, contact)
    if settings.BEACON_STAFF_WEBHOOK_URL:
        enqueue.tell_staff_by_webhook(subject, text)


def admin_link(name: str, pk: int) -> str:
    """The absolute address of an admin page, for messages to staff."""
    return urljoin(page_base_url() + "/", reverse(name, args=[pk]))


def staff_recipients() -> list[str]:
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    staff = users.filter(groups__name__in=STAFF_GROUPS) | users.filter(is_superuser=True)
    return sorted(set(staff.values_list("email", flat=True)))


def staff_email(*, subject: str, text: str, contact: str = "") -> int:
    """Email staff (the Responders and Admins groups, and superusers); returns how many.

    With a `contact` (a webhook's owner), the email is to them with staff in copy.
    """
    from django.core.mail import EmailMessage

    staff = staff_recipients()
    to = [contact] if contact else staff
    cc = [address for address in staff if address.lower() != contact.lower()] if contact else []
    if to:
        # one_line: a name with a stray line break must not make the mail library refuse it.
        subject = one_line(f"[{PageSettings.load().name}] {subject}")
        EmailMessage(subject, text, None, to, cc=cc).send()
    return len(to) + len(cc)


def staff_webhook(*, subject: str, text: str) -> None:
    """Post to STAFF_WEBHOOK_URL as Slack incoming webhooks expect ({"text": ...})."""
    url = settings.BEACON_STAFF_WEBHOOK_URL
    if url:
        _post_staff_webhook(url, f"*{slack_escaped(subject)}*\n{slack_escaped(text)}")


def _post_staff_webhook(url: str, text: str) -> None:
    import httpx

    target = httpx.URL(url)
    host = target.host
    try:
        addresses = resolve_blocking(host, target.port or (443 if target.scheme == "https" else 80))
    except TargetRefused as refused:
        logger.warning("staff webhook refused: %s", refused)
        return
    # Connect to the address that was vetted (a second lookup could answer differently);
    # the name still goes in Host and in TLS (SNI and the certificate check).
    with httpx.Client(timeout=10, follow_redirects=False, trust_env=False) as client:
        response = client.post(
            target.copy_with(host=addresses[0]),
            json={"text": text},
            headers={"Host": target.netloc.decode("ascii")},
            extensions={"sni_hostname": host} if target.scheme == "https" else {},
        )
    response.raise_for_status()

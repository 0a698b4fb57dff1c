"""Reminding staff of incidents gone silent past the page's promised update interval.

A beat task (incidents.tasks.remind_silent_incidents) calls silent_incidents_remind every
minute. An incident silent for at least one interval gets one reminder per whole interval of
silence: at 30 minutes, at 60 if still silent, and none after a new update until the interval
has passed again. The reminder goes by the staff alert path: an email to the incident's author
with the Responders, Admins and superusers in copy, and STAFF_WEBHOOK_URL when it is set.

Each reminder is claimed by a conditional UPDATE of Incident.silence_reminded_at, so two beats
(or two workers) running at once send it once.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from incidents.automatic import admin_link, staff_alert
from incidents.models import Incident
from incidents.selectors import Silence, open_for_updates, open_incidents_silence
from statuspage.lib.text import one_line
from statuspage.models import PageSettings


def silent_incidents_remind(*, now: datetime | None = None) -> int:
    """Remind staff of each open incident whose silence has passed a whole interval since its
    last reminder; returns how many reminders were sent."""
    now = now or timezone.now()
    interval = PageSettings.load().update_interval
    if interval is None:
        return 0
    sent = 0
    for silence in open_incidents_silence(interval=interval, now=now):
        if silence.since < interval:
            continue
        # The start of this interval of silence: the reminder for it is due from here.
        due_at = silence.last_update_at + (silence.since // interval) * interval
        with transaction.atomic():
            claimed = (
                open_for_updates(Incident.objects.filter(pk=silence.incident.pk))
                .filter(Q(silence_reminded_at__isnull=True) | Q(silence_reminded_at__lt=due_at))
                # an update posted since the read ends this silence
                .exclude(updates__created_at__gt=silence.last_update_at)
                .update(silence_reminded_at=now)
            )
            if claimed:
                _remind(silence, interval=interval)
                sent += 1
    return sent


def _remind(silence: Silence, *, interval: timedelta) -> None:
    incident = silence.incident
    name = one_line(incident.name)
    minutes = int(silence.since.total_seconds() // 60)
    promised = int(interval.total_seconds() // 60)
    kind = "maintenance" if incident.is_maintenance else "incident"
    change = (
        "admin:incidents_scheduledmaintenance_change"
        if incident.is_maintenance
        else "admin:incidents_incident_change"
    )
    last = silence.last_update_at.strftime("%Y-%m-%d %H:%M UTC")
    text = (
        f"The {kind} “{name}” ({incident.get_status_display().lower()}) has had no public "
        f"update for {_duration(minutes)}: the last was posted at {last}. The page promises "
        f"an update every {_duration(promised)}.\n\n"
        f"Post an update, even to say that work goes on:\n"
        f"{admin_link(change, incident.pk)}\n"
    )
    author = incident.created_by
    contact = author.email if author is not None and author.is_active else ""
    staff_alert(subject=f"No update for {_duration(minutes)}: {name}", text=text, contact=contact)


def _duration(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest} minute" + ("s" if rest != 1 else "")
    text = f"{hours} hour" + ("s" if hours != 1 else "")
    return text + (f" {rest} min" if rest else "")

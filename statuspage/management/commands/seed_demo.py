"""Build the demo page of "Nimbus AI": components, 90 days of history, incidents, maintenances.

Everything is written through the services, as staff would write it, so the demo obeys the
same rules and the services publish it. History is replayed in time order, with explicit
past times, so the status history, the daily uptime rollups and the incident timelines are
the real thing: the components are backdated to the start of the history
(components_backdate) before the incidents are replayed over it.
"""

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from components.models import Component, ComponentGroup
from components.services import (
    component_create,
    component_delete,
    component_group_create,
    component_group_delete,
    component_group_update,
    component_update,
    components_backdate,
    roll_up_uptime,
)
from components.status_choices import ComponentStatus, ComponentStatusValue
from incidents.models import (
    Incident,
    IncidentKind,
    IncidentKindValue,
    IncidentStatus,
    IncidentStatusValue,
    IncidentTemplate,
)
from incidents.postmortems import ActionItem, Postmortem, generated_timeline
from incidents.series.services import series_create
from incidents.services import (
    incident_create,
    incident_delete,
    incident_post_update,
    postmortem_publish,
)
from statuspage.models import PageSettings
from statuspage.services import page_settings_update

DEMO_MARKER = "Web chat"
HISTORY_DAYS = 90

PAGE = {
    "name": "Nimbus AI",
    "url": "http://127.0.0.1:8000",
    "home_url": "https://nimbus-ai.example.com",
    "support_url": "https://nimbus-ai.example.com/support",
    "time_zone": "America/New_York",
    "brand_color": "#6d28d9",
    "footer_text": (
        "Nimbus AI builds assistants for people and teams. "
        "Questions? [Contact support](https://nimbus-ai.example.com/support)."
    ),
}

# (group name, group description, [(component, description)]); None groups nothing.
LAYOUT = [
    (
        "Nimbus apps",
        "The apps people chat with Nimbus in.",
        [
            ("Web chat", "nimbus-ai.example.com/chat in the browser."),
            ("Mobile apps", "Nimbus for iOS and Android."),
            ("Coding assistant CLI", "The `nimbus` command-line coding assistant."),
        ],
    ),
    (
        "Platform",
        "What the apps and our API customers build on.",
        [
            ("Login & authentication", "Sign-in, single sign-on and sessions."),
            ("API", "api.nimbus-ai.example.com, including streaming responses."),
            ("Developer console", "API keys, usage dashboards and the playground."),
        ],
    ),
    (None, "", [("Billing", "Subscriptions, invoices and usage-based billing.")]),
]

OP = ComponentStatus.OPERATIONAL
DEGRADED = ComponentStatus.DEGRADED_PERFORMANCE
PARTIAL = ComponentStatus.PARTIAL_OUTAGE
MAJOR = ComponentStatus.MAJOR_OUTAGE


@dataclass
class Step:
    """One update: `day` days before today (negative: after), at local `hh:mm` of the page."""

    day: int
    at: str
    status: IncidentStatusValue
    body: str
    components: dict[str, ComponentStatusValue] = field(default_factory=dict)


@dataclass
class Story:
    name: str
    steps: list[Step]
    kind: IncidentKindValue = IncidentKind.INCIDENT
    affected: list[str] = field(default_factory=list)
    # A maintenance's (start, end), each as (days before today, local "hh:mm").
    window: tuple[tuple[int, str], tuple[int, str]] | None = None
    # Published with the timeline drawn from the story's updates (incidents/postmortems.py).
    postmortem: Postmortem | None = None


STORIES = [
    Story(
        "Slow responses in Web chat",
        [
            Step(
                84,
                "10:12",
                IncidentStatus.INVESTIGATING,
                "We are seeing slower than usual responses in **Web chat**. "
                "Messages are still delivered. We are investigating.",
                {"Web chat": DEGRADED},
            ),
            Step(
                84,
                "10:47",
                IncidentStatus.IDENTIFIED,
                "A cache node serving conversation history is overloaded. "
                "We are moving its traffic to healthy nodes.",
            ),
            Step(
                84,
                "11:35",
                IncidentStatus.RESOLVED,
                "Response times are back to normal. Thank you for your patience.",
            ),
        ],
    ),
    Story(
        "Delayed push notifications on mobile",
        [
            Step(
                71,
                "19:03",
                IncidentStatus.INVESTIGATING,
                "Some users of the **Mobile apps** receive notifications for finished "
                "answers several minutes late. Chats themselves are not affected.",
                {"Mobile apps": DEGRADED},
            ),
            Step(
                71,
                "19:58",
                IncidentStatus.MONITORING,
                "Our notification provider has cleared its backlog. "
                "We are monitoring delivery times.",
            ),
            Step(
                71,
                "20:40",
                IncidentStatus.RESOLVED,
                "Notifications are delivered on time again.",
            ),
        ],
    ),
    Story(
        "Database maintenance for the Developer console and Billing",
        [
            Step(
                66,
                "15:30",
                IncidentStatus.SCHEDULED,
                "We will upgrade the database behind the **Developer console** and **Billing**. "
                "Both may be read-only for up to two hours. The API is not affected.",
            ),
            Step(
                63,
                "02:00",
                IncidentStatus.IN_PROGRESS,
                "Scheduled maintenance is in progress. The **Developer console** and "
                "**Billing** may be read-only for up to two hours. The API is not affected.",
            ),
            Step(
                63,
                "03:25",
                IncidentStatus.VERIFYING,
                "The database upgrade is done. We are verifying that everything works.",
            ),
            Step(
                63,
                "03:40",
                IncidentStatus.COMPLETED,
                "The scheduled maintenance has been completed.",
            ),
        ],
        kind=IncidentKind.MAINTENANCE,
        affected=["Developer console", "Billing"],
        window=((63, "02:00"), (63, "04:00")),
    ),
    Story(
        "Coding assistant CLI fails to sign in",
        [
            Step(
                55,
                "15:21",
                IncidentStatus.INVESTIGATING,
                "Some users of the **Coding assistant CLI** see `401 Unauthorized` when "
                "running `nimbus login`. We are investigating.",
                {"Coding assistant CLI": PARTIAL},
            ),
            Step(
                55,
                "15:49",
                IncidentStatus.IDENTIFIED,
                "A token refresh change released today rejects valid refresh tokens. "
                "We are rolling it back.",
            ),
            Step(
                55,
                "16:30",
                IncidentStatus.MONITORING,
                "The rollback is complete and sign-ins succeed again. If you are still "
                "signed out, run `nimbus login` once more.",
                {"Coding assistant CLI": OP},
            ),
            Step(55, "17:30", IncidentStatus.RESOLVED, "This incident has been resolved."),
        ],
    ),
    Story(
        "Elevated API latency",
        [
            Step(
                41,
                "13:08",
                IncidentStatus.INVESTIGATING,
                "API requests are taking longer than usual and some streaming responses "
                "time out. We are investigating.",
                {"API": DEGRADED},
            ),
            Step(
                41,
                "13:36",
                IncidentStatus.IDENTIFIED,
                "A capacity shortfall in one inference region is sending traffic to the "
                "others. About 8% of requests fail with `529 Overloaded`; retries succeed.",
                {"API": PARTIAL},
            ),
            Step(
                41,
                "15:02",
                IncidentStatus.MONITORING,
                "Additional capacity is online and latency is returning to normal. "
                "We are monitoring.",
                {"API": DEGRADED},
            ),
            Step(
                41,
                "16:10",
                IncidentStatus.RESOLVED,
                "API latency and error rates are back to normal.",
            ),
        ],
        postmortem=Postmortem(
            summary=(
                "On this day, from 13:00 to 16:10 Eastern time, requests to the Nimbus API "
                "were slower than usual, and for 86 minutes some of them failed."
            ),
            impact="About 8% of requests failed with `529 Overloaded`; the rest were slower.",
            impact_minutes=86,
            users_affected_percent=8,
            root_cause=(
                "A scheduled hardware rotation took a third of one inference region's capacity "
                "offline earlier than planned. Our load balancer moved traffic to the remaining "
                "regions as designed, but their autoscaling limits had not been raised to "
                "match, so queues grew and requests timed out.\n\n"
                "We are sorry for the disruption to your applications."
            ),
            actions=[
                ActionItem(
                    "Hardware rotations wait until replacement capacity reports healthy.",
                    owner="Infrastructure",
                    done=True,
                ),
                ActionItem(
                    "Check autoscaling limits against a lost-region scenario every week.",
                    owner="SRE",
                ),
                ActionItem(
                    "Alert on queue depth per region, not only on global error rates.",
                    owner="SRE",
                ),
            ],
        ),
    ),
    Story(
        "Invoices delayed",
        [
            Step(
                29,
                "09:14",
                IncidentStatus.INVESTIGATING,
                "Monthly invoices for Team plans have not been sent yet. Payments and "
                "access are not affected.",
                {"Billing": DEGRADED},
            ),
            Step(
                29,
                "11:02",
                IncidentStatus.RESOLVED,
                "All invoices have been sent. No action is needed on your side.",
            ),
        ],
    ),
    Story(
        "File uploads failing in Web chat",
        [
            Step(
                18,
                "16:44",
                IncidentStatus.INVESTIGATING,
                "Uploading files and images in **Web chat** fails for some users. "
                "Text chats work normally.",
                {"Web chat": PARTIAL},
            ),
            Step(
                18,
                "17:20",
                IncidentStatus.IDENTIFIED,
                "An expired certificate on the upload storage endpoint is the cause. "
                "We are replacing it.",
            ),
            Step(
                18,
                "17:41",
                IncidentStatus.RESOLVED,
                "The certificate has been replaced and uploads work again.",
            ),
        ],
    ),
    Story(
        "Developer console dashboards not loading",
        [
            Step(
                9,
                "11:30",
                IncidentStatus.INVESTIGATING,
                "Usage dashboards in the **Developer console** show no data. "
                "API usage is still recorded and billed correctly.",
                {"Developer console": PARTIAL},
            ),
            Step(
                9,
                "12:15",
                IncidentStatus.MONITORING,
                "Dashboards are loading again, with data up to date. We are monitoring.",
                {"Developer console": OP},
            ),
            Step(9, "13:00", IncidentStatus.RESOLVED, "This incident has been resolved."),
        ],
    ),
    Story(
        "Web chat and sign-in unavailable",
        [
            Step(
                3,
                "14:06",
                IncidentStatus.INVESTIGATING,
                "**Web chat** and **sign-in** are unavailable for all users. "
                "The **API** is working normally. We are investigating.",
                {"Web chat": MAJOR, "Login & authentication": MAJOR},
            ),
            Step(
                3,
                "14:52",
                IncidentStatus.IDENTIFIED,
                "A configuration change to our identity provider's session store broke "
                "session validation everywhere. We are reverting it; API keys are not "
                "affected.",
            ),
            Step(
                3,
                "17:35",
                IncidentStatus.MONITORING,
                "Sign-in works again. Web chat is recovering as sessions are re-created; "
                "some users may need to sign in again.",
                {"Login & authentication": OP, "Web chat": DEGRADED},
            ),
            Step(
                3,
                "19:10",
                IncidentStatus.RESOLVED,
                "All services have been operating normally since 18:40. A reverted "
                "configuration change caused this outage; we have added a check that "
                "blocks changes which fail session validation.",
            ),
        ],
    ),
    Story(
        "Web chat unavailable",
        [
            Step(
                2,
                "09:22",
                IncidentStatus.INVESTIGATING,
                "**Web chat** is failing to load for most users. Sign-in, the mobile apps "
                "and the API are working. We are investigating.",
                {"Web chat": MAJOR},
            ),
            Step(
                2,
                "09:48",
                IncidentStatus.IDENTIFIED,
                "Part of yesterday's session store fix was undone by an automated "
                "deployment. We are re-applying it.",
            ),
            Step(
                2,
                "10:31",
                IncidentStatus.MONITORING,
                "Web chat loads again. We are monitoring error rates.",
                {"Web chat": OP},
            ),
            Step(
                2,
                "11:05",
                IncidentStatus.RESOLVED,
                "Web chat has been stable for half an hour. This incident is resolved.",
            ),
        ],
    ),
    Story(
        "API and Developer console maintenance",
        [
            Step(
                0,
                "now",
                IncidentStatus.SCHEDULED,
                "We are upgrading the network of our main API region. The **API** may "
                "return `503` errors for a few seconds at a time, and the **Developer "
                "console** will be read-only. Clients that retry are not affected.",
            ),
        ],
        kind=IncidentKind.MAINTENANCE,
        affected=["API", "Developer console"],
        window=((-2, "02:00"), (-2, "04:00")),
    ),
]


class Command(BaseCommand):
    help = (
        'Build the demo page of "Nimbus AI" with 90 days of history. Does nothing if the '
        "demo already exists; --reset deletes every component, group and incident first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Delete all components, groups, incidents and templates, then rebuild.",
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Only seed when the page has no components at all.",
        )
        parser.add_argument(
            "--url",
            default=PAGE["url"],
            help="The page's public URL, which links in emails are built from.",
        )

    def handle(
        self,
        *args: Any,
        reset: bool = False,
        if_empty: bool = False,
        url: str = PAGE["url"],
        **options: Any,
    ) -> None:
        if reset:
            with transaction.atomic():
                for incident in Incident.objects.all():
                    incident_delete(incident=incident)
                # Templates are staff's drafting aids, never shown to the public, and no
                # service owns them (the admin edits them as plain rows).
                IncidentTemplate.objects.all().delete()
                for component in Component.objects.all():
                    component_delete(component=component)
                for group in ComponentGroup.objects.all():
                    component_group_delete(group=group)
            self.stdout.write("Deleted the existing components and incidents.")
        elif Component.objects.filter(name=DEMO_MARKER).exists():
            self.stdout.write(
                f'The demo already exists (there is a "{DEMO_MARKER}"): nothing to do.'
            )
            return
        elif if_empty and Component.objects.exists():
            self.stdout.write("The page already has components: not seeding the demo.")
            return

        now = timezone.now()
        zone = _set_up_page(url=url).zone
        today = now.astimezone(zone).date()
        with transaction.atomic():
            start = _local(today - timedelta(days=HISTORY_DAYS - 1), "00:00", zone)
            components = _create_components(start)
            incidents = _replay(components, today, zone, now)
            _agree_on_terms(components)
            _schedule_patching(components, today, zone, now)
            roll_up_uptime(until=now)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created the Nimbus AI demo: {len(components)} components, "
                f"{len(incidents)} incidents and maintenances, {HISTORY_DAYS} days of history."
            )
        )


def _local(day: date, hhmm: str, zone: tzinfo) -> datetime:
    hour, minute = map(int, hhmm.split(":"))
    return datetime.combine(day, time(hour, minute), tzinfo=zone)


def _set_up_page(*, url: str) -> PageSettings:
    page = PageSettings.objects.get(pk=PageSettings.load().pk)
    page_settings_update(page=page, changes={**PAGE, "url": url})
    # The cache is otherwise refreshed on commit; the replay needs the page's zone now.
    PageSettings.forget_cached()
    return PageSettings.load()


# The platform's SLA: its group's terms, which its components inherit; the API's own are
# stricter, as API customers pay for it.
PLATFORM_SLA = {
    "sla_target": Decimal("99.9"),
    "sla_credit_tiers": [{"below": 99.9, "credit": 10}, {"below": 99.0, "credit": 25}],
}
API_SLA = {
    "sla_target": Decimal("99.95"),
    "sla_credit_tiers": [
        {"below": 99.95, "credit": 10},
        {"below": 99.9, "credit": 25},
        {"below": 99.0, "credit": 50},
    ],
}


def _agree_on_terms(components: dict[str, Component]) -> None:
    api = components["API"]
    assert api.group is not None
    component_group_update(group=api.group, changes=PLATFORM_SLA)
    component_update(component=api, changes=API_SLA)


def _schedule_patching(
    components: dict[str, Component], today: date, zone: tzinfo, now: datetime
) -> None:
    """A recurring maintenance: Billing's database is patched every Tuesday night."""
    series_create(
        name="Weekly database patching for Billing",
        body="Billing's database is patched. Invoices may take a few minutes longer to appear.",
        rule="FREQ=WEEKLY;BYDAY=TU",
        dtstart=_local(today + timedelta(days=(1 - today.weekday()) % 7 or 7), "03:00", zone),
        duration=timedelta(minutes=30),
        time_zone=str(zone),
        components=[components["Billing"]],
        now=now,
    )


def _create_components(start: datetime) -> dict[str, Component]:
    components = {}
    for position, (group_name, group_description, members) in enumerate(LAYOUT, start=1):
        group = None
        if group_name:
            group = component_group_create(
                name=group_name, description=group_description, position=position
            )
        for member_position, (name, description) in enumerate(members, start=1):
            components[name] = component_create(
                name=name,
                description=description,
                group=group,
                # Ungrouped components share the groups' sequence, as on Statuspage.
                position=member_position if group else position,
            )
    # The components have existed, operational, since the history starts.
    components_backdate(components=list(components.values()), since=start)
    return components


def _replay(
    components: dict[str, Component], today: date, zone: tzinfo, now: datetime
) -> list[Incident]:
    """Post every story's updates in time order, across stories, through the services."""

    def when(day: int, hhmm: str) -> datetime:
        return now if hhmm == "now" else _local(today - timedelta(days=day), hhmm, zone)

    events = sorted(
        (
            (when(step.day, step.at), n, i)
            for n, story in enumerate(STORIES)
            for i, step in enumerate(story.steps)
        ),
        key=lambda event: event[:2],
    )
    incidents: dict[int, Incident] = {}
    for at, n, i in events:
        story, step = STORIES[n], STORIES[n].steps[i]
        statuses = {components[name]: status for name, status in step.components.items()}
        if i == 0:
            window = story.window
            incidents[n] = incident_create(
                name=story.name,
                status=step.status,
                body=step.body,
                kind=story.kind,
                component_statuses=statuses,
                affected_components=[components[name] for name in story.affected],
                deliver_notifications=False,
                started_at=None if step.status == IncidentStatus.SCHEDULED else at,
                created_at=at,
                scheduled_for=when(*window[0]) if window else None,
                scheduled_until=when(*window[1]) if window else None,
            )
        else:
            incident_post_update(
                incident=incidents[n],
                status=step.status,
                body=step.body,
                component_statuses=statuses,
                deliver_notifications=False,
                display_at=at,
            )
    for n, story in enumerate(STORIES):
        if story.postmortem:
            structured = replace(story.postmortem, timeline=generated_timeline(incidents[n]))
            incidents[n] = postmortem_publish(incident=incidents[n], structured=structured)
    return list(incidents.values())

"""What a webhook says: Statuspage's JSON body, or a Slack, Discord or Teams message.

The body of an event is the same for every subscriber but for Statuspage's `meta.unsubscribe`,
so it is rendered once (`statuspage_payload`, kept on the event) and only the unsubscribe link
is added per delivery. Chat formats are built from that stored payload, without queries.

How a body is sent (signature, address guard, deadlines) is the channel's:
incidents/notify/channels/webhook.py.
"""

import hashlib
import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from django.db.models import TextChoices
from django.utils import timezone
from django.utils.translation import gettext

from components.models import Component, ComponentStatus, ComponentStatusChange
from components.selectors import component_tree
from incidents.models import Incident, IncidentStatus, IncidentUpdate
from incidents.notify import links
from incidents.notify.models import EventKind, NotificationEvent, Subscriber, WebhookFormat
from incidents.selectors import with_timeline
from incidents.statuspage_json import (
    Json,
    PageJson,
    component_json,
    incident_update_json,
    page_json_context,
    timestamp,
)
from statuspage.lib.chat_text import adaptive_card_escaped, slack_escaped, without_mass_mentions

# The body is Statuspage's webhook format, field for field: its documentation describes it.
# Beacon's own additions (the X-Beacon-* headers) are in docs/notifications.md.
DOCUMENTATION_URL = "https://support.atlassian.com/statuspage/docs/enable-webhook-notifications/"

_COMPONENT_KEYS = [
    "status",
    "name",
    "created_at",
    "updated_at",
    "position",
    "description",
    "showcase",
    "id",
    "page_id",
    "group_id",
]

# Statuspage's key order, object by object, named by the key that holds the object (see the
# fixtures). PostgreSQL's jsonb keeps keys in an order of its own, so the payload stored on
# the event is put back in this order when it is sent: some clients hash the raw text.
_KEY_ORDER: dict[str, list[str]] = {
    "$": ["meta", "page", "incident", "component", "component_update"],
    "meta": ["unsubscribe", "documentation", "generated_at"],
    "page": ["id", "status_indicator", "status_description"],
    "incident": [
        "name",
        "status",
        "created_at",
        "updated_at",
        "monitoring_at",
        "resolved_at",
        "impact",
        "shortlink",
        "postmortem_ignored",
        "postmortem_body",
        "postmortem_body_last_updated_at",
        "postmortem_published_at",
        "postmortem_notified_subscribers",
        "postmortem_notified_twitter",
        "backfilled",
        "scheduled_for",
        "scheduled_until",
        "scheduled_remind_prior",
        "scheduled_reminded_at",
        "impact_override",
        "scheduled_auto_in_progress",
        "scheduled_auto_completed",
        "id",
        "page_id",
        "incident_updates",
        "components",
    ],
    "incident_updates": [
        "status",
        "body",
        "created_at",
        "wants_twitter_update",
        "twitter_updated_at",
        "updated_at",
        "display_at",
        "affected_components",
        "custom_tweet",
        "deliver_notifications",
        "id",
        "incident_id",
    ],
    "affected_components": ["code", "name", "old_status", "new_status"],
    "components": _COMPONENT_KEYS,
    "component": _COMPONENT_KEYS,
    "component_update": [
        "old_status",
        "new_status",
        "created_at",
        "component_type",
        "id",
        "component_id",
    ],
}


def statuspage_order(payload: Json) -> Json:
    """The payload with every object's keys in Statuspage's order (unknown keys last)."""
    return _ordered_object(payload, "$")


def _ordered(value: object, key: str) -> object:
    if isinstance(value, list):
        return [_ordered(item, key) for item in value]
    if not isinstance(value, dict):
        return value
    return _ordered_object(value, key)


def _ordered_object(value: dict[str, object], key: str) -> dict[str, object]:
    order = _KEY_ORDER.get(key, [])
    keys = [k for k in order if k in value] + [k for k in value if k not in order]
    return {k: _ordered(value[k], k) for k in keys}


# The Statuspage body


def statuspage_payload(event: NotificationEvent) -> Json:
    """Statuspage's webhook body for the event, without `meta.unsubscribe` (per subscriber)."""
    tree = component_tree()
    ctx = page_json_context(
        page=tree.page,
        base_url=links.page_base_url(),
        updated_at=timezone.now(),
        components=tree.components,
        groups=tree.groups,
    )
    body: Json = {
        "meta": {
            "documentation": DOCUMENTATION_URL,
            "generated_at": ctx.time(timezone.now()),
        },
        "page": {
            "id": tree.page.public_id,
            "status_indicator": tree.status.indicator,
            "status_description": tree.status.description,
        },
    }
    if event.incident_id:
        incident = with_timeline(Incident.objects.filter(pk=event.incident_id)).get()
        body["incident"] = incident_json(incident, ctx, update_id=event.update_id)
    elif event.status_change_id:
        change = ComponentStatusChange.objects.select_related("component__group").get(
            pk=event.status_change_id
        )
        body["component"] = _component(change.component, ctx, status=change.to_status)
        body["component_update"] = {
            "old_status": change.from_status,
            "new_status": change.to_status,
            "created_at": ctx.time(change.at),
            "component_type": "Component",
            "id": derived_id("component_update", ctx.page.public_id, change.pk),
            "component_id": change.component.public_id,
        }
    return body


def derived_id(*parts: object) -> str:
    """A stable Statuspage-style id (12 base-36 characters) for a row that has no public id."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    number = int.from_bytes(digest, "big") % 36**12
    chars = []
    for _ in range(12):
        number, digit = divmod(number, 36)
        chars.append("0123456789abcdefghijklmnopqrstuvwxyz"[digit])
    return "".join(reversed(chars))


def _component(component: Component, ctx: PageJson, *, status: str | None = None) -> Json:
    entry = ctx.by_component.get(component.pk) or component_json(
        component, page=ctx.page, position=component.position
    )
    data = {key: entry[key] for key in _COMPONENT_KEYS}
    if status is not None:
        data["status"] = status
    return data


def incident_json(
    incident: Incident, ctx: PageJson, *, update_id: int | None, bare: bool = False
) -> Json:
    """The incident as the event's update left it: later updates are not in its timeline.

    `bare`: with no updates and no components, for a caller that shows those apart."""
    updates: list[IncidentUpdate] = [] if bare else list(incident.updates.all())
    status = incident.status
    updated_at = incident.updated_at
    monitoring_at, resolved_at = incident.monitoring_at, incident.resolved_at
    announced = next((u for u in updates if u.pk == update_id), None)
    if announced is not None:
        updates = [u for u in updates if u.pk <= announced.pk]
        status = announced.status
        cutoff = announced.created_at
        updated_at = min(updated_at, cutoff)
        monitoring_at = monitoring_at if monitoring_at and monitoring_at <= cutoff else None
        resolved_at = resolved_at if resolved_at and resolved_at <= cutoff else None
    maintenance = incident.is_maintenance
    postmortem = incident.has_published_postmortem
    postmortem_notified = (
        postmortem
        and incident.notification_events.filter(kind=EventKind.POSTMORTEM_PUBLISHED).exists()
    )
    return {
        "name": incident.name,
        "status": status,
        "created_at": ctx.time(incident.created_at),
        "updated_at": ctx.time(updated_at),
        "monitoring_at": ctx.time(monitoring_at),
        "resolved_at": ctx.time(resolved_at),
        "impact": incident.impact,
        "shortlink": ctx.base_url + incident.get_absolute_url(),
        "postmortem_ignored": False,
        # A draft postmortem stays private until it is published.
        "postmortem_body": incident.postmortem_body if postmortem else None,
        "postmortem_body_last_updated_at": (
            ctx.time(incident.postmortem_published_at) if postmortem else None
        ),
        "postmortem_published_at": (
            ctx.time(incident.postmortem_published_at) if postmortem else None
        ),
        "postmortem_notified_subscribers": postmortem_notified,
        "postmortem_notified_twitter": False,
        "backfilled": incident.backfilled,
        "scheduled_for": ctx.time(incident.scheduled_for),
        "scheduled_until": ctx.time(incident.scheduled_until),
        # Statuspage reports the maintenance switches as false on incidents.
        "scheduled_remind_prior": maintenance and incident.scheduled_remind_prior,
        "scheduled_reminded_at": ctx.time(incident.scheduled_reminded_at),
        "impact_override": incident.impact_override or None,
        "scheduled_auto_in_progress": maintenance and incident.scheduled_auto_in_progress,
        "scheduled_auto_completed": maintenance and incident.scheduled_auto_completed,
        "id": incident.public_id,
        "page_id": ctx.page.public_id,
        "incident_updates": [incident_update_object(u, ctx, incident.public_id) for u in updates],
        "components": [] if bare else [_component(c, ctx) for c in incident.components.all()],
    }


def incident_update_object(update: IncidentUpdate, ctx: PageJson, incident_id: str) -> Json:
    """One update as the incident of a webhook (and of the management API) lists it."""
    api = incident_update_json(update, ctx, incident_id=incident_id)
    return {
        "status": api["status"],
        "body": api["body"],
        "created_at": api["created_at"],
        "wants_twitter_update": False,
        "twitter_updated_at": None,
        "updated_at": api["updated_at"],
        "display_at": api["display_at"],
        "affected_components": api["affected_components"],
        "custom_tweet": None,
        "deliver_notifications": api["deliver_notifications"],
        "id": api["id"],
        "incident_id": incident_id,
    }


def with_unsubscribe(payload: Json, subscriber: Subscriber) -> Json:
    """The stored body with this subscriber's `meta.unsubscribe`, in Statuspage's key order."""
    meta = {**payload.get("meta", {}), "unsubscribe": links.unsubscribe_url(subscriber)}
    return statuspage_order({**payload, "meta": meta})


# Chat formats: the test message links to the subscription's manage page; updates link to
# the incident.


@dataclass(frozen=True)
class Message:
    title: str
    text: str
    url: str
    link_label: str
    color: int
    at: str | None


# Statuspage's palette: green, yellow, orange, red, blue, grey.
_GREEN, _YELLOW, _ORANGE, _RED, _BLUE, _GREY = (
    0x2FCC66,
    0xF1C40F,
    0xE67E22,
    0xE74C3C,
    0x3498DB,
    0x8C8C8C,
)
_STATUS_COLOR = {
    ComponentStatus.OPERATIONAL: _GREEN,
    ComponentStatus.DEGRADED_PERFORMANCE: _YELLOW,
    ComponentStatus.PARTIAL_OUTAGE: _ORANGE,
    ComponentStatus.MAJOR_OUTAGE: _RED,
    ComponentStatus.UNDER_MAINTENANCE: _BLUE,
}
_IMPACT_COLOR = {
    "none": _GREY,
    "minor": _YELLOW,
    "major": _ORANGE,
    "critical": _RED,
    "maintenance": _BLUE,
}
_ENDED = {IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM, IncidentStatus.COMPLETED}


def _label(choices: type[TextChoices], value: str) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return value.replace("_", " ").capitalize()


def _local_time(value: str | None) -> str:
    if not value:
        return ""
    at = datetime.fromisoformat(value)
    return f"{at.day} {at:%b %Y %H:%M} {at.tzname()}"


def message(event: NotificationEvent) -> Message:
    """What the chat formats say: a title, the update, and a link to the page."""
    payload = event.payload or statuspage_payload(event)
    if "incident" in payload:
        return _incident_message(event, payload["incident"])
    if "component" in payload:
        component, change = payload["component"], payload["component_update"]
        old = _label(ComponentStatus, change["old_status"])
        new = _label(ComponentStatus, change["new_status"])
        return Message(
            title=event.subject or f"{component['name']}: {old} → {new}",
            text=f"{component['name']} is now {new.lower()} (was {old.lower()}).",
            url=links.page_base_url(),
            link_label="View status page",
            color=_STATUS_COLOR.get(change["new_status"], _GREY),
            at=change["created_at"],
        )
    return Message(
        title=event.subject or event.get_kind_display(),
        text=payload["page"]["status_description"],
        url=links.page_base_url(),
        link_label="View status page",
        color=_GREY,
        at=payload["meta"].get("generated_at"),
    )


def _incident_message(event: NotificationEvent, incident: Json) -> Message:
    status = _label(IncidentStatus, incident["status"])
    latest = incident["incident_updates"][0] if incident["incident_updates"] else None
    lines: list[str] = []
    at = latest["created_at"] if latest else incident["updated_at"]
    if event.kind == EventKind.POSTMORTEM_PUBLISHED:
        lines.append("Postmortem published.")
        lines.append(incident["postmortem_body"] or "")
        at = incident["postmortem_published_at"] or at
    elif event.kind == EventKind.MAINTENANCE_REMINDER:
        lines.append(
            f"Starts {_local_time(incident['scheduled_for'])}, "
            f"ends {_local_time(incident['scheduled_until'])}."
        )
    elif latest:
        lines.append(f"{_label(IncidentStatus, latest['status'])}: {latest['body']}".rstrip())
        for entry in latest["affected_components"] or []:
            lines.append(f"• {entry['name']}: {_label(ComponentStatus, entry['new_status'])}")
    if incident["scheduled_for"] and event.kind == EventKind.MAINTENANCE_SCHEDULED:
        lines.append(
            f"Scheduled for {_local_time(incident['scheduled_for'])} "
            f"to {_local_time(incident['scheduled_until'])}."
        )
    ended = incident["status"] in _ENDED
    color = _GREEN if ended else _IMPACT_COLOR.get(incident["impact"], _GREY)
    return Message(
        title=event.subject or f"{incident['name']} – {status}",
        text="\n".join(line for line in lines if line).strip() or status,
        url=incident["shortlink"],
        link_label="View maintenance" if incident["scheduled_for"] else "View incident",
        color=color,
        at=at,
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(event: NotificationEvent) -> Json:
    return slack_body(message(event))


def discord_payload(event: NotificationEvent) -> Json:
    return discord_body(message(event))


def teams_payload(event: NotificationEvent) -> Json:
    return teams_body(message(event))


def slack_body(msg: Message) -> Json:
    """A Slack incoming webhook: `text` for notifications, blocks for the message."""
    link = f"<{msg.url}|{slack_escaped(msg.link_label)}>"
    return {
        "text": _clip(slack_escaped(msg.title), 3000),
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": _clip(without_mass_mentions(msg.title), 150),
                },
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _clip(slack_escaped(msg.text), 3000)},
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": link}]},
        ],
    }


def discord_body(msg: Message) -> Json:
    """A Discord webhook: one embed (title ≤ 256, description ≤ 4096 characters)."""
    embed = {
        "title": _clip(without_mass_mentions(msg.title), 256),
        "description": _clip(without_mass_mentions(msg.text), 4096),
        "url": msg.url,
        "color": msg.color,
    }
    if msg.at:
        embed["timestamp"] = msg.at
    # allowed_mentions: nobody is pinged, whatever a name or an update says (@everyone,
    # <@id>, <@&role>); the zero-width spaces only keep the text from looking like a ping.
    return {
        "content": _clip(without_mass_mentions(msg.title), 2000),
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    }


def teams_body(msg: Message) -> Json:
    """Microsoft Teams (Workflows or incoming webhook): an Adaptive Card 1.4."""
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": adaptive_card_escaped(msg.title),
                "weight": "Bolder",
                "size": "Medium",
                "wrap": True,
            },
            {"type": "TextBlock", "text": adaptive_card_escaped(msg.text), "wrap": True},
        ],
        "actions": [{"type": "Action.OpenUrl", "title": msg.link_label, "url": msg.url}],
    }
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


# One function per chat format, from the event's message to the tool's body.
CHAT_FORMATS: dict[str, Callable[[Message], Json]] = {
    WebhookFormat.SLACK: slack_body,
    WebhookFormat.DISCORD: discord_body,
    WebhookFormat.TEAMS: teams_body,
}


# Test deliveries, from the admin


def sample_payload(subscriber: Subscriber, *, component_ids: Collection[int] | None = None) -> Json:
    """A test body in the subscriber's format; Statuspage's names its first component.

    `component_ids` stands for the subscriber's choice before it is saved (a visitor's test
    message is posted before anything is stored). A chat message links to the subscription's
    manage page, where its owner changes components or removes it.
    """
    tree = component_tree()
    now = timezone.now()
    base_url = links.page_base_url()
    chat = CHAT_FORMATS.get(subscriber.webhook_format)
    if chat is not None:
        name = tree.page.name
        return chat(
            Message(
                title=gettext("Test from %(name)s") % {"name": name},
                text=gettext(
                    "This channel will receive %(name)s's status notifications. "
                    "Choose components or remove it: %(url)s"
                )
                % {"name": name, "url": links.manage_url(subscriber)},
                url=links.manage_url(subscriber),
                link_label=gettext("Manage this subscription"),
                color=_GREEN,
                at=timestamp(now, tree.page.zone),
            )
        )
    ctx = page_json_context(
        page=tree.page,
        base_url=base_url,
        updated_at=now,
        components=tree.components,
        groups=tree.groups,
    )
    body: Json = {
        "meta": {"documentation": DOCUMENTATION_URL, "generated_at": ctx.time(now)},
        "page": {
            "id": tree.page.public_id,
            "status_indicator": tree.status.indicator,
            "status_description": tree.status.description,
        },
    }
    candidates = tree.components
    if component_ids is not None:
        chosen = set(component_ids)
    elif subscriber.all_components:
        chosen = set()
    else:
        chosen = set(subscriber.components.values_list("pk", flat=True))
    if chosen:
        candidates = [c for c in candidates if c.pk in chosen]
    if candidates:
        first = candidates[0]
        # The same old and new status: nothing changed, which is what a test says.
        body["component"] = _component(first, ctx)
        body["component_update"] = {
            "old_status": first.status,
            "new_status": first.status,
            "created_at": ctx.time(now),
            "component_type": "Component",
            "id": derived_id("test", secrets.token_hex(8)),
            "component_id": first.public_id,
        }
    return with_unsubscribe(body, subscriber)

"""Structured postmortems: what staff write in the admin's editor, and the Markdown it becomes.

A structured postmortem is stored as JSON on `Incident.postmortem` (summary, impact with its
figures, timeline, root cause and action items); `postmortem_markdown` composes it into the one
Markdown text every existing output reads (`Incident.postmortem_body`: the incident page's
fallback, API v1 and v2, feeds, webhooks, emails). An incident whose postmortem was written
free-form (the API's `body_draft`, or before structured postmortems) has an empty
`Incident.postmortem` and keeps its body as it is.
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import translation
from django.utils.translation import gettext, gettext_lazy

from components.models import Component, ComponentStatusChange
from incidents.models import AffectedComponent, Incident
from statuspage.lib.local_format import format_percent as local_percent
from statuspage.lib.markdown import markdown_as_plain_text
from statuspage.lib.text import one_line
from statuspage.models import PageSettings

# Caps the editor holds staff to (the composed Markdown is also held to MAX_POSTMORTEM_BODY).
MAX_SECTION_CHARS = 25_000
MAX_TIMELINE_ENTRIES = 500
MAX_TIMELINE_TEXT = 1_000
MAX_ACTION_ITEMS = 100
MAX_ACTION_TEXT = 1_000
MAX_OWNER_CHARS = 200
# How far outside the incident a timeline entry may lie: the deploy that caused it, the
# follow-up that confirmed the fix.
TIMELINE_MARGIN = timedelta(days=1)
# A due date within this many days of the incident's start.
MAX_DUE_DAYS = 3660

SECTION_TITLES = {
    "summary": gettext_lazy("Summary"),
    "impact": gettext_lazy("Impact"),
    "timeline": gettext_lazy("Timeline"),
    "root_cause": gettext_lazy("Root cause"),
    "actions": gettext_lazy("What we are changing"),
}


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    text: str


@dataclass(frozen=True)
class ActionItem:
    description: str
    owner: str = ""
    due: date | None = None
    done: bool = False


@dataclass(frozen=True)
class Postmortem:
    summary: str = ""
    impact: str = ""
    impact_minutes: int | None = None
    users_affected_percent: float | None = None
    timeline: list[TimelineEntry] = field(default_factory=list)
    root_cause: str = ""
    actions: list[ActionItem] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "impact": self.impact,
            "impact_minutes": self.impact_minutes,
            "users_affected_percent": self.users_affected_percent,
            "timeline": [
                {"at": entry.at.astimezone(UTC).isoformat(), "text": entry.text}
                for entry in self.timeline
            ],
            "root_cause": self.root_cause,
            "actions": [
                {
                    "description": item.description,
                    "owner": item.owner,
                    "due": item.due.isoformat() if item.due else None,
                    "done": item.done,
                }
                for item in self.actions
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Postmortem":
        """The postmortem stored by `to_json` (written only by the services, so trusted)."""
        return cls(
            summary=data.get("summary", ""),
            impact=data.get("impact", ""),
            impact_minutes=data.get("impact_minutes"),
            users_affected_percent=data.get("users_affected_percent"),
            timeline=[
                TimelineEntry(at=datetime.fromisoformat(entry["at"]), text=entry["text"])
                for entry in data.get("timeline", [])
            ],
            root_cause=data.get("root_cause", ""),
            actions=[
                ActionItem(
                    description=item["description"],
                    owner=item.get("owner", ""),
                    due=date.fromisoformat(item["due"]) if item.get("due") else None,
                    done=bool(item.get("done")),
                )
                for item in data.get("actions", [])
            ],
        )

    @property
    def users_affected_display(self) -> str:
        """The share in the active language's form ("12,5 %")."""
        if self.users_affected_percent is None:
            return ""
        return local_percent(percent_digits(self.users_affected_percent))

    @property
    def is_empty(self) -> bool:
        return not (
            self.summary.strip()
            or self.impact.strip()
            or self.root_cause.strip()
            or self.timeline
            or self.actions
        )


def structured_postmortem(incident: Incident) -> Postmortem | None:
    """The incident's structured postmortem, or None when it has none (free-form or none)."""
    return Postmortem.from_json(incident.postmortem) if incident.postmortem else None


def postmortem_initial(incident: Incident) -> Postmortem:
    """What the editor starts from: the structured postmortem, else an old free-form body as
    the summary with a timeline and minutes of impact drawn from the incident."""
    existing = structured_postmortem(incident)
    if existing is not None:
        return existing
    return Postmortem(
        summary=incident.postmortem_body,
        impact_minutes=default_impact_minutes(incident),
        timeline=generated_timeline(incident),
    )


def default_impact_minutes(incident: Incident) -> int | None:
    """Minutes from the first update to the resolution, or None while unresolved."""
    first = incident.updates.order_by("display_at", "id").values_list("display_at", flat=True)
    start = first.first() or incident.started_at
    if incident.resolved_at is None or incident.resolved_at < start:
        return None
    return int((incident.resolved_at - start).total_seconds() // 60)


def timeline_window(incident: Incident) -> tuple[datetime, datetime]:
    """When a timeline entry may lie: a day either side of the incident."""
    end = incident.resolved_at or incident.updated_at
    return incident.started_at - TIMELINE_MARGIN, max(end, incident.started_at) + TIMELINE_MARGIN


def generated_timeline(incident: Incident) -> list[TimelineEntry]:
    """The incident's updates (status and the body's first line) and its public components'
    status changes while it lasted, oldest first."""
    entries: list[tuple[datetime, int, str]] = []
    with translation.override(PageSettings.load().default_language):
        for update in incident.updates.order_by("display_at", "id"):
            # What the update says, not how: a timeline entry is plain text.
            said = markdown_as_plain_text(update.body)
            first_line = next((line for line in said.splitlines() if line.strip()), "")
            text = update.get_status_display()
            if first_line:
                text = f"{text}: {one_line(first_line)}"
            entries.append((update.display_at, 0, text[:MAX_TIMELINE_TEXT]))
        named = AffectedComponent.objects.filter(update__incident=incident).values("component")
        # Two IN tests, not a UNION: SQLite refuses the components' ordering inside one.
        components = Component.objects.public().filter(
            Q(pk__in=named) | Q(pk__in=incident.components.values("pk"))
        )
        changes = ComponentStatusChange.objects.filter(
            component__in=components, at__gte=incident.started_at
        ).select_related("component")
        if incident.resolved_at is not None:
            changes = changes.filter(at__lte=incident.resolved_at + timedelta(seconds=1))
        for change in changes.order_by("at", "id"):
            text = gettext("%(component)s: %(old)s → %(new)s") % {
                "component": change.component.name,
                "old": change.get_from_status_display(),
                "new": change.get_to_status_display(),
            }
            entries.append((change.at, 1, text[:MAX_TIMELINE_TEXT]))
    entries.sort(key=lambda entry: (entry[0], entry[1]))
    return [TimelineEntry(at=at, text=text) for at, _, text in entries[:MAX_TIMELINE_ENTRIES]]


def _figures(postmortem: Postmortem) -> list[str]:
    figures = []
    if postmortem.impact_minutes is not None:
        figures.append(
            gettext("Minutes of impact: %(minutes)s") % {"minutes": postmortem.impact_minutes}
        )
    if postmortem.users_affected_percent is not None:
        figures.append(
            gettext("Users affected: %(percent)s %%")
            % {"percent": percent_digits(postmortem.users_affected_percent)}
        )
    return figures


def percent_digits(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _plain(text: str) -> str:
    """One line of plain text inside Markdown: what would start a block or a link is escaped."""
    escaped = one_line(text)
    for character in "\\`*_[]>#|":
        escaped = escaped.replace(character, "\\" + character)
    # "\<" is no escape to Python-Markdown (the backslash would show): entities are, to every
    # Markdown reader; "&" first, so that text which says "&lt;" keeps saying it.
    return escaped.replace("&", "&amp;").replace("<", "&lt;")


def postmortem_markdown(postmortem: Postmortem) -> str:
    """The postmortem as one Markdown text, for clients that only know `postmortem_body`.

    Headings in the page's default language; times in UTC.
    """
    blocks: list[str] = []
    with translation.override(PageSettings.load().default_language):
        if postmortem.summary.strip():
            blocks += [f"## {SECTION_TITLES['summary']}", postmortem.summary.strip()]
        figures = _figures(postmortem)
        if postmortem.impact.strip() or figures:
            blocks.append(f"## {SECTION_TITLES['impact']}")
            if postmortem.impact.strip():
                blocks.append(postmortem.impact.strip())
            if figures:
                blocks.append("\n".join(f"- {figure}" for figure in figures))
        if postmortem.timeline:
            lines = [
                f"- {entry.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC: {_plain(entry.text)}"
                for entry in postmortem.timeline
            ]
            blocks += [f"## {SECTION_TITLES['timeline']}", "\n".join(lines)]
        if postmortem.root_cause.strip():
            blocks += [f"## {SECTION_TITLES['root_cause']}", postmortem.root_cause.strip()]
        if postmortem.actions:
            blocks += [
                f"## {SECTION_TITLES['actions']}",
                "\n".join(map(_action_line, postmortem.actions)),
            ]
    return "\n\n".join(blocks)


def _action_line(item: ActionItem) -> str:
    details = []
    if item.owner:
        details.append(gettext("owner: %(owner)s") % {"owner": _plain(item.owner)})
    if item.due:
        details.append(gettext("due %(date)s") % {"date": item.due.isoformat()})
    mark = "[x]" if item.done else "[ ]"
    suffix = f" ({', '.join(details)})" if details else ""
    return f"- {mark} {_plain(item.description)}{suffix}"

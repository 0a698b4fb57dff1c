"""What the management API answers: one model per response body, field for field.

ninja validates each route's dict against its model and renders the validated model, so
the fields are declared in the order the dicts are built, which is Statuspage's key order
(some clients diff or hash the raw text). Every model forbids unknown keys: a key a route
adds but its model lacks fails the tests, where ignoring extras would drop it from the
answer without a word.

Timestamps and dates stay strings, documented as date-time and date: statuspage_json already
renders them as Statuspage does (milliseconds, the page's zone), and parsing them here would
render them again, differently. The enums are the models' choices (a test keeps them so).
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, WithJsonSchema

from incidents.models import ImpactName, IncidentStatusName

ComponentStatus = Literal[
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
]
# The incidents' own names for their statuses and impacts (incidents/models.py).
IncidentStatus = IncidentStatusName
Impact = ImpactName
SubscriberMode = Literal["email", "webhook"]  # Beacon has none of Statuspage's other modes

Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
Day = Annotated[str, WithJsonSchema({"type": "string", "format": "date"})]


class Output(BaseModel):
    # pydantic's own model rather than ninja's Schema, which reads every field through an
    # attribute-getter made for ORM objects and, forbidding extras, validates each nested
    # model twice per level: on a list of 100 incidents, 40 ms against 2 ms for these dicts.
    model_config = ConfigDict(extra="forbid")


class Error(Output):
    """Statuspage's clients read either key, so both carry the message."""

    error: str
    message: str


# The page


class Page(Output):
    """Statuspage's Page. Fields Beacon has no setting for are null, or the fixed value
    that describes Beacon (one basic page, feeds and webhooks on, no SMS)."""

    id: str
    created_at: Timestamp | None
    updated_at: Timestamp
    name: str
    page_description: str | None
    headline: str | None
    branding: str
    subdomain: str | None
    domain: str | None
    url: str | None
    support_url: str | None
    hidden_from_search: bool
    allow_page_subscribers: bool
    allow_incident_subscribers: bool
    allow_email_subscribers: bool
    allow_sms_subscribers: bool
    allow_rss_atom_feeds: bool
    allow_webhook_subscribers: bool
    notifications_from_email: str | None
    notifications_email_footer: str | None
    activity_score: int
    twitter_username: str | None
    viewers_must_be_team_members: bool
    ip_restrictions: str | None
    city: str | None
    state: str | None
    country: str | None
    time_zone: str
    css_body_background_color: str | None
    css_font_color: str | None
    css_light_font_color: str | None
    css_greens: str | None
    css_yellows: str | None
    css_oranges: str | None
    css_blues: str | None
    css_reds: str | None
    css_border_color: str | None
    css_graph_color: str | None
    css_link_color: str | None
    css_no_data: str | None
    # Statuspage's uploaded images; Beacon has none to describe, so always null.
    favicon_logo: None
    transactional_logo: None
    hero_cover: None
    email_logo: None
    twitter_logo: None


# Components


class _PublicComponent(Output):
    """A component entry of the public API v2, shared by components and groups."""

    id: str
    name: str
    status: ComponentStatus
    created_at: Timestamp
    updated_at: Timestamp
    position: int
    description: str | None
    showcase: bool
    start_date: Day | None
    group_id: str | None
    page_id: str
    group: bool
    only_show_if_degraded: bool


class Component(_PublicComponent):
    group: Literal[False]
    automation_email: str | None


class ComponentGroupEntry(_PublicComponent):
    """A group as the component list shows it: `group: true` and its children's ids."""

    group: Literal[True]
    components: list[str]
    automation_email: str | None


# The component list, and a component looked up by id, may be either.
ComponentEntry = Component | ComponentGroupEntry


class GroupComponent(Output):
    """Statuspage's GroupComponent, what /component-groups answers."""

    id: str
    page_id: str
    name: str
    description: str | None
    components: list[str]
    position: int
    created_at: Timestamp
    updated_at: Timestamp


class RelatedEvent(Output):
    id: str


class Uptime(Output):
    id: str
    name: str
    range_start: Day
    range_end: Day
    uptime_percentage: float | None  # null when nothing in the range was counted
    major_outage: int  # seconds
    partial_outage: int  # seconds
    warnings: list[str]
    related_events: list[RelatedEvent]


class SlaDowntime(Output):
    degraded_performance: float  # minutes
    partial_outage: float
    major_outage: float


class SlaCreditTier(Output):
    below: float  # uptime strictly below this percentage …
    credit: float  # … earns this percentage back


class SlaIncident(Output):
    id: str
    name: str
    started_at: Timestamp
    resolved_at: Timestamp | None
    minutes_in_month: float  # clipped to the month (and to now in the current month)


class SlaReport(Output):
    """Beacon's own: one month of a component or group against its SLA (docs/sla.md)."""

    id: str
    name: str
    kind: Literal["component", "group"]
    month: str
    range_start: Timestamp
    range_end: Timestamp  # the month's end, or now in the current month
    partial: bool  # the current month: counted up to now
    counted_from: Day | None  # the first counted day, when after the month's first
    uptime_percentage: float | None  # null: no data in the month
    counted_minutes: float  # maintenance excluded
    maintenance_minutes: float
    downtime_minutes: SlaDowntime
    target: float | None
    target_inherited: bool  # a component's target taken from its group
    breached: bool
    credit_percentage: float | None
    credit_tiers: list[SlaCreditTier]
    incidents: list[SlaIncident]
    mttr_minutes: float | None  # null: no incident resolved in the month


# Incidents


class AffectedComponent(Output):
    code: str
    name: str
    old_status: ComponentStatus
    new_status: ComponentStatus


class IncidentUpdate(Output):
    status: IncidentStatus
    body: str
    created_at: Timestamp
    wants_twitter_update: bool
    twitter_updated_at: Timestamp | None
    updated_at: Timestamp
    display_at: Timestamp
    affected_components: list[AffectedComponent] | None  # null when none changed
    custom_tweet: str | None
    deliver_notifications: bool
    id: str
    incident_id: str
    tweet_id: str | None


class IncidentComponent(Output):
    """A component as an incident names it: the webhook's keys, no group fields."""

    status: ComponentStatus
    name: str
    created_at: Timestamp
    updated_at: Timestamp
    position: int
    description: str | None
    showcase: bool
    id: str
    page_id: str
    group_id: str | None


class Incident(Output):
    """The webhook's incident (maintenances too) and the fields only the manage API has."""

    name: str
    status: IncidentStatus
    created_at: Timestamp
    updated_at: Timestamp
    monitoring_at: Timestamp | None
    resolved_at: Timestamp | None
    impact: Impact
    shortlink: str
    postmortem_ignored: bool
    postmortem_body: str | None
    postmortem_body_last_updated_at: Timestamp | None
    postmortem_published_at: Timestamp | None
    postmortem_notified_subscribers: bool
    postmortem_notified_twitter: bool
    backfilled: bool
    scheduled_for: Timestamp | None
    scheduled_until: Timestamp | None
    scheduled_remind_prior: bool
    scheduled_reminded_at: Timestamp | None
    impact_override: Impact | None
    scheduled_auto_in_progress: bool
    scheduled_auto_completed: bool
    id: str
    page_id: str
    incident_updates: list[IncidentUpdate]  # newest first
    components: list[IncidentComponent]
    started_at: Timestamp
    metadata: dict[str, dict[str, Any]]
    auto_transition_to_maintenance_state: bool
    auto_transition_to_operational_state: bool
    auto_transition_deliver_notifications_at_start: bool
    auto_transition_deliver_notifications_at_end: bool


class Postmortem(Output):
    preview_key: str | None
    body: str | None  # null until published
    body_last_updated_at: Timestamp | None
    body_draft: str | None
    ignored: bool
    notify_subscribers: bool
    notify_twitter: bool
    custom_tweet: str | None
    published_at: Timestamp | None
    created_at: Timestamp | None
    updated_at: Timestamp


# Subscribers


class Subscriber(Output):
    id: str
    mode: SubscriberMode
    email: str | None
    endpoint: str | None
    phone_number: str | None
    phone_country: str | None
    display_phone_number: str | None
    obfuscated_channel_name: str | None
    workspace_name: str | None
    quarantined_at: Timestamp | None
    purge_at: Timestamp | None
    components: list[str]
    page_access_user_id: str | None
    created_at: Timestamp
    skip_confirmation_notification: bool


class SubscriberCount(Output):
    count: int


class StateCounts(Output):
    unconfirmed: int
    active: int
    quarantined: int


class HistogramByState(Output):
    """Subscribers by mode, then by state; Beacon's two modes, every state counted."""

    email: StateCounts
    webhook: StateCounts

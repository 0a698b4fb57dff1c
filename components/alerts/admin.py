"""The staff side of inbound alerts: integrations, their URL, what their alerts say now,
and the deliveries Beacon could not use."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator
from django.utils.translation import gettext, gettext_lazy

from components.alerts.models import AlertIntegration, AlertLog, AlertState
from components.alerts.services import alert_integration_regenerate_token
from statuspage.models import PageSettings

RECENT = 20


def receive_url(request, integration: AlertIntegration) -> str:
    """The URL to paste into the tool: under the page's public URL when it is set."""
    base = PageSettings.load().url or request.build_absolute_uri("/")
    path = reverse("alerts-receive", args=[integration.kind, integration.token])
    return base.rstrip("/") + path


def _when(moment) -> str:
    """A time for staff, in the page's zone; a row stored before times were checked may
    hold one near the end of the calendar, which no zone ahead of UTC can show."""
    if moment is None:
        return "–"
    try:
        shown = timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")
    except OverflowError:
        shown = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return format_html('<time datetime="{}">{}</time>', moment.isoformat(), shown)


def _time_column(field: str, description: str, ordering: str | None = None):
    """A list column / read-only field showing a datetime field with _when: the admin's own
    display converts to local time and answers 500 on such a row."""

    @admin.display(description=description, ordering=ordering or field)
    def column(model_admin, obj):
        return _when(getattr(obj, field))

    column.__name__ = f"{field}_shown"
    return column


def _state_label(state: AlertState) -> str:
    reported = "firing" if state.reported_firing else "resolved"
    if state.reported_firing == state.firing and (
        not state.firing or state.reported_status == state.status
    ):
        return reported
    return f"{reported} (not yet counted: it must hold)"


@admin.register(AlertIntegration)
class AlertIntegrationAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "enabled", "last_received"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]
    actions = ["regenerate_token"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "enabled", "url", "last_received"]}),
        (
            "Rules",
            {
                "fields": [
                    "match_label",
                    "components_by_value",
                    "severity_label",
                    "severity_statuses",
                    "default_status",
                    ("firing_for", "resolved_for"),
                ],
                "description": "A firing alert moves the components its match label names "
                "to the status of its severity; the worst firing alert wins, and the status "
                "before them comes back when the last one resolves. Components on manual "
                "status, named by an open incident or set by a person are left alone. "
                "A report moves a component once it has held: firing for “firing for” "
                "seconds, resolved for “resolved for”, so a flapping alert moves it once. "
                "Automatic incidents follow each component's own setting. See docs/alerts.md.",
            },
        ),
        ("Now", {"fields": ["current_states", "recent_log"]}),
    ]
    readonly_fields = ["last_received", "current_states", "recent_log"]
    last_received = _time_column("last_received_at", "Last received")

    def get_fieldsets(self, request, obj=None):
        url = self._url_field(request)
        return [
            (title, {**options, "fields": [url if f == "url" else f for f in options["fields"]]})
            for title, options in super().get_fieldsets(request, obj)
        ]

    def get_readonly_fields(self, request, obj=None):
        return [self._url_field(request), *super().get_readonly_fields(request, obj)]

    @staticmethod
    def _url_field(request):
        """The URL, built from the request when the page has no public URL: a read-only
        field made once per request (the admin instance is shared by all requests)."""
        if not hasattr(request, "_alert_url_field"):

            @admin.display(description=gettext_lazy("URL to paste into the tool"))
            def url(integration):
                if integration.pk is None:
                    return "Shown once saved."
                return format_html(
                    "<code>{}</code><br><small>Keep it secret: anyone with it can change "
                    "statuses. “Regenerate the secret URL” in the list replaces it.</small>",
                    receive_url(request, integration),
                )

            request._alert_url_field = url
        return request._alert_url_field

    @admin.display(description=gettext_lazy("Alerts (latest first)"))
    def current_states(self, integration):
        if integration.pk is None:
            return "–"
        states = integration.states.select_related("component").order_by("-firing", "-event_at")[
            :RECENT
        ]
        if not states:
            return "No alerts yet."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    state.summary or state.fingerprint,
                    state.component.name,
                    _state_label(state),
                    state.get_status_display() if state.firing else "–",
                    _when(state.event_at),
                )
                for state in states
            ),
        )
        return format_html(
            "<table><thead><tr><th>Alert</th><th>Component</th><th>State</th>"
            "<th>Status it calls for</th><th>Last event</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description=gettext_lazy("Deliveries to look at (latest first)"))
    def recent_log(self, integration):
        if integration.pk is None:
            return "–"
        entries = integration.log_entries.all()[:RECENT]
        if not entries:
            return "None: every delivery was read and matched."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            (
                (
                    _when(entry.received_at),
                    "accepted" if entry.ok else "refused (400)",
                    entry.reason,
                    Truncator(entry.excerpt).chars(300),
                )
                for entry in entries
            ),
        )
        return format_html(
            "<table><thead><tr><th>Received</th><th>Answer</th><th>Why</th>"
            "<th>Body</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.action(
        description=gettext_lazy("Regenerate the secret URL of selected integrations"),
        permissions=["change"],
    )
    def regenerate_token(self, request, queryset):
        for integration in queryset:
            alert_integration_regenerate_token(integration=integration)
            self.log_change(request, integration, "Regenerated the token.")
        self.message_user(
            request,
            gettext("%(count)s new URL(s): update them in the tools, the old ones no longer work.")
            % {"count": len(queryset)},
            messages.WARNING,
        )


@admin.register(AlertState)
class AlertStateAdmin(admin.ModelAdmin):
    """What each alert last said: read-only, kept by deliveries."""

    list_display = ["summary", "component", "integration", "firing", "status", "event"]
    list_filter = ["firing", "integration", "component"]
    list_select_related = ["component", "integration"]
    search_fields = ["summary", "fingerprint", "component__name"]
    fields = [
        "integration",
        "fingerprint",
        "component",
        "firing",
        "status",
        "reported_firing",
        "reported_status",
        "reported",
        "status_before",
        "starts",
        "ends",
        "event",
        "summary",
        "labels",
        "created",
        "updated",
    ]
    readonly_fields = ["reported", "starts", "ends", "event", "created", "updated"]
    reported = _time_column("reported_at", "Report received at")
    starts = _time_column("starts_at", "Starts at")
    ends = _time_column("ends_at", "Ends at")
    event = _time_column("event_at", "Event at")
    created = _time_column("created_at", "Created at")
    updated = _time_column("updated_at", "Updated at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AlertLog)
class AlertLogAdmin(admin.ModelAdmin):
    list_display = ["received", "integration", "ok", "reason"]
    list_filter = ["ok", "integration"]
    list_select_related = ["integration"]
    search_fields = ["reason"]
    fields = ["integration", "received", "ok", "reason", "excerpt"]
    readonly_fields = ["received"]
    received = _time_column("received_at", "Received at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

"""The staff side of subscribers and of the notifications sent to them.

Forms collect input; incidents.notify.subscriptions does the writes. Imported at the end of
incidents/admin.py, which registers these admins with the site.
"""

import csv
from collections.abc import Iterator

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import FileExtensionValidator
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import Truncator
from django.utils.translation import gettext, gettext_lazy, ngettext
from django.views.decorators.http import require_http_methods, require_POST

from components.models import Component
from incidents.forms import ServiceForm
from incidents.models import Incident
from incidents.notify import subscriptions
from incidents.notify.channels.webhook import webhook_test_delivery
from incidents.notify.models import (
    Channel,
    Delivery,
    DeliveryState,
    NotificationEvent,
    Subscriber,
    SubscriberState,
)
from statuspage.lib.service_admin import ReadOnlyAdmin, ServiceFormAdmin, call_service

IMPORT_MAX_MB = 10
EXPORT_COLUMNS = [
    "email",
    "channel",
    "endpoint",
    "state",
    "components",
    "created_at",
    "confirmed_at",
]
QUARANTINED_WEBHOOKS_SHOWN = 10
FAILED_DELIVERIES_SHOWN = 100
IMPORT_ERRORS_SHOWN = 100

# Refused here, not only when a delivery is sent: private and metadata addresses too.
webhook_url = subscriptions.webhook_endpoint_validate


# Forms


def components_field() -> forms.ModelMultipleChoiceField:
    return forms.ModelMultipleChoiceField(
        queryset=Component.objects.in_page_order(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="None ticked: every component, including ones added later.",
    )


def component_ids(components) -> list[int]:
    return [component.pk for component in components]


def optional_email(address: str) -> str:
    """A normalised address, or "" for none; raises ValidationError for a bad one."""
    if not address.strip():
        return ""
    try:
        return subscriptions.normalise_email(address)
    except ValidationError as error:
        raise ValidationError("Enter a valid email address.") from error


class SubscriberAddForm(ServiceForm):
    """Staff add a webhook (confirmed by them, if they say so) or an email address.

    An address added here is asked to confirm by email; confirmed addresses come in through
    the CSV import.
    """

    # A browser push subscription is made by the browser alone (its keys are its own).
    channel = forms.ChoiceField(
        choices=[(Channel.EMAIL, Channel.EMAIL.label), (Channel.WEBHOOK, Channel.WEBHOOK.label)],
        initial=Channel.WEBHOOK,
        widget=forms.RadioSelect,
    )
    email = forms.CharField(
        label="Email address",
        max_length=254,
        required=False,
        help_text="Email: the subscriber's address. Webhook: whom to tell when the "
        "endpoint keeps failing (optional).",
    )
    endpoint = forms.CharField(
        label="Webhook URL", max_length=2000, required=False, validators=[webhook_url]
    )
    secret = forms.CharField(
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text=Subscriber._meta.get_field("secret").help_text
        + " Shown only now: it is never displayed again.",
    )
    confirmed_by_staff = forms.BooleanField(
        required=False,
        initial=True,
        help_text="Webhooks only: active at once. Email addresses confirm themselves by email.",
    )
    components = components_field()

    class Meta:
        model = Subscriber
        fields = ["webhook_format"]

    def clean(self):
        cleaned_data = super().clean()
        channel = cleaned_data.get("channel")
        if channel == Channel.EMAIL:
            self._clean_email_subscriber(cleaned_data)
        elif channel == Channel.WEBHOOK:
            self._clean_webhook(cleaned_data)
        return cleaned_data

    def _clean_email_subscriber(self, cleaned_data):
        try:
            address = subscriptions.normalise_email(cleaned_data.get("email", ""))
        except ValidationError as error:
            self.add_error("email", error.message_dict["email"])
            return
        cleaned_data["email"] = address
        if Subscriber.objects.filter(channel=Channel.EMAIL, email=address).exists():
            self.add_error("email", f"{address} is already a subscriber.")
        if cleaned_data.get("confirmed_by_staff"):
            self.add_error(
                "confirmed_by_staff",
                "Email addresses confirm themselves by email; import a CSV file to add "
                "addresses confirmed elsewhere.",
            )

    def _clean_webhook(self, cleaned_data):
        if not cleaned_data.get("endpoint") and "endpoint" not in self.errors:
            self.add_error("endpoint", "Enter the URL Beacon posts to.")
        try:
            cleaned_data["email"] = optional_email(cleaned_data.get("email", ""))
        except ValidationError as error:
            self.add_error("email", error)


class SubscriberChangeForm(ServiceForm):
    """What staff may change on any subscriber: its components, and confirm or re-enable it."""

    components = components_field()
    state = forms.ChoiceField(
        help_text="A subscriber is disabled after bouncing or failing; to stop sending to "
        "one, delete it."
    )

    class Meta:
        model = Subscriber
        fields: list[str] = ["audience"]
        help_texts = {
            "audience": "Internal subscribers also hear of internal incidents and components."
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        subscriber = self.instance
        self.initial.setdefault(
            "components",
            [] if subscriber.all_components else list(subscriber.components.all()),
        )
        self.initial.setdefault("state", subscriber.state)
        choices = [(subscriber.state, subscriber.get_state_display())]
        if subscriber.state == SubscriberState.UNCONFIRMED:
            choices.append((SubscriberState.ACTIVE, "Active (confirmed by staff)"))
        elif subscriber.state == SubscriberState.QUARANTINED:
            choices.append((SubscriberState.ACTIVE, "Active (re-enabled)"))
        state_field = self.fields["state"]
        assert isinstance(state_field, forms.ChoiceField)  # declared above
        state_field.choices = choices
        # A form that does not send it (an older page, a script) leaves the audience be.
        self.fields["audience"].required = False

    def clean_audience(self) -> str:
        return self.cleaned_data.get("audience") or self.instance.audience


class WebhookChangeForm(SubscriberChangeForm):
    """A webhook's settings; its secret is write-only."""

    endpoint = forms.CharField(label="Webhook URL", max_length=2000, validators=[webhook_url])
    contact_email = forms.CharField(
        label="Contact email",
        max_length=254,
        required=False,
        help_text=Subscriber._meta.get_field("email").help_text,
    )
    new_secret = forms.CharField(
        label="New secret",
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="Leave blank to keep the current secret.",
    )
    clear_secret = forms.BooleanField(
        label="Remove the secret", required=False, help_text="Send deliveries unsigned."
    )

    class Meta:
        model = Subscriber
        fields = ["webhook_format", "audience"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial.setdefault("endpoint", self.instance.endpoint)
        self.initial.setdefault("contact_email", self.instance.email)

    def clean_contact_email(self):
        return optional_email(self.cleaned_data["contact_email"])

    def clean(self):
        cleaned_data = super().clean()
        if cleaned_data.get("new_secret") and cleaned_data.get("clear_secret"):
            self.add_error("clear_secret", "Enter a new secret or remove it, not both.")
        return cleaned_data

    def settings_changed(self) -> dict:
        """The webhook's own columns that change: a write of this row alone."""
        data, changed = self.cleaned_data, self.changed_data
        fields = {
            model_field: data[form_field]
            for form_field, model_field in [
                ("endpoint", "endpoint"),
                ("contact_email", "email"),
                ("webhook_format", "webhook_format"),
            ]
            if form_field in changed
        }
        if data.get("new_secret"):
            fields["secret"] = data["new_secret"]
        elif data.get("clear_secret"):
            fields["secret"] = ""
        return fields


class ImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        validators=[
            FileExtensionValidator(["csv", "txt"], message="Choose a .csv file (UTF-8 text).")
        ],
        help_text=f"UTF-8 text, at most {IMPORT_MAX_MB} MB. The first line names the columns: "
        "email, and optionally components (names separated by ;, empty for all).",
    )

    def clean_file(self) -> bytes:
        upload = self.cleaned_data["file"]
        if upload.size > IMPORT_MAX_MB * 1024 * 1024:
            raise ValidationError(
                f"The file is larger than {IMPORT_MAX_MB} MB: split it and import the parts."
            )
        data = upload.read()
        if b"\x00" in data:
            raise ValidationError(
                "This is not CSV text (a spreadsheet, or UTF-16 text?): "
                "save it as “CSV UTF-8” and try again."
            )
        return data


# The subscriber list


class ComponentListFilter(admin.SimpleListFilter):
    """Who hears about a component: those subscribed to every component, and those who chose it."""

    title = "hears about"
    parameter_name = "component"
    EVERY = "all"

    def lookups(self, request, model_admin):
        return [
            (self.EVERY, "Every component (subscribed to all)"),
            *((str(c.pk), c.name) for c in Component.objects.in_page_order()),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == self.EVERY:
            return queryset.filter(all_components=True)
        if value and value.isdigit():
            chosen = Subscriber.components.through.objects.filter(
                subscriber_id=OuterRef("pk"), component_id=int(value)
            )
            return queryset.filter(Q(all_components=True) | Exists(chosen))
        return queryset


def subscriber_totals() -> dict[str, int]:
    """Subscribers by state, and the counts the list's header needs, in one query."""
    return Subscriber.objects.aggregate(
        **{
            f"state_{state}": Count("pk", filter=Q(state=state)) for state in SubscriberState.values
        },
        active_all_components=Count(
            "pk", filter=Q(state=SubscriberState.ACTIVE, all_components=True)
        ),
        quarantined_webhooks=Count(
            "pk", filter=Q(state=SubscriberState.QUARANTINED, channel=Channel.WEBHOOK)
        ),
    )


def audience_by_component(active_all_components: int) -> list[tuple[Component, int]]:
    """Each component with the active subscribers who hear about it, in one query."""
    components = Component.objects.in_page_order().annotate(
        chosen_by=Count(
            "subscribers",
            filter=Q(subscribers__state=SubscriberState.ACTIVE, subscribers__all_components=False),
        )
    )
    return [(component, active_all_components + component.chosen_by) for component in components]


class _Echo:
    """csv.writer writes to it; each row comes back as text to stream."""

    def write(self, value: str) -> str:
        return value


def _cell(value: str) -> str:
    # Spreadsheets run a cell that starts like a formula; addresses come from the public.
    if value and value[0] in "=+-@\t\r":
        return "'" + value
    return value


def subscribers_csv(queryset: QuerySet) -> Iterator[str]:
    """The rows of an export, read from the database in chunks, never all at once."""
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    subscribers = (
        queryset.order_by("pk")
        .prefetch_related(None)
        .prefetch_related(
            Prefetch("components", queryset=Component.objects.only("pk", "name").order_by("name"))
        )
    )
    for subscriber in subscribers.iterator(chunk_size=2000):
        names = (
            ""
            if subscriber.all_components
            else ";".join(component.name for component in subscriber.components.all())
        )
        yield writer.writerow(
            [
                _cell(subscriber.email),
                subscriber.channel,
                _cell(subscriber.endpoint),
                subscriber.state,
                _cell(names),
                subscriber.created_at.isoformat(),
                subscriber.confirmed_at.isoformat() if subscriber.confirmed_at else "",
            ]
        )


def csv_response(queryset: QuerySet) -> StreamingHttpResponse:
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response = StreamingHttpResponse(subscribers_csv(queryset), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="subscribers-{stamp}.csv"'
    return response


@admin.register(Subscriber)
class SubscriberAdmin(ServiceFormAdmin[Subscriber]):
    list_display = [
        "address",
        "channel",
        "state",
        "audience",
        "component_list",
        "created_at",
        "confirmed_at",
    ]
    list_display_links = ["address"]
    list_filter = ["channel", "state", "audience", ComponentListFilter]
    search_fields = ["email", "endpoint"]
    show_full_result_count = False  # one COUNT of 100,000 rows per page is enough
    readonly_fields = [
        "channel",
        "public_id",
        "secret_status",
        "created_at",
        "confirmed_at",
        "confirmation_sent_at",
        "failing_since",
        "quarantined_at",
        "bounced_at",
        "last_error",
    ]
    actions = [
        "export_selected_csv",
        "send_test_delivery",
        "confirm_selected",
        "reactivate_selected",
        "delete_selected",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("components")

    # Pages

    def get_urls(self):
        def view(name, suffix, method):
            return path(
                suffix,
                self.admin_site.admin_view(method),
                name=f"incidents_subscriber_{name}",
            )

        return [
            view("import", "import/", self.import_view),
            view("export", "export/", self.export_view),
            view("test_delivery", "<path:object_id>/test-delivery/", self.test_delivery_view),
            view("confirm", "<path:object_id>/confirm/", self.confirm_view),
            view("reactivate", "<path:object_id>/reactivate/", self.reactivate_view),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        totals = subscriber_totals()
        quarantined: list[Subscriber] | QuerySet[Subscriber] = []
        if totals["quarantined_webhooks"]:
            quarantined = Subscriber.objects.filter(
                channel=Channel.WEBHOOK, state=SubscriberState.QUARANTINED
            ).order_by("-quarantined_at", "-id")[:QUARANTINED_WEBHOOKS_SHOWN]
        context = {
            "state_totals": [
                (label, totals[f"state_{state}"]) for state, label in SubscriberState.choices
            ],
            "active_all_components": totals["active_all_components"],
            "audience": audience_by_component(totals["active_all_components"]),
            "quarantined_webhooks": quarantined,
            "quarantined_webhooks_total": totals["quarantined_webhooks"],
            "quarantined_webhooks_url": reverse("admin:incidents_subscriber_changelist")
            + f"?channel__exact={Channel.WEBHOOK}&state__exact={SubscriberState.QUARANTINED}",
            "can_import": self.has_add_permission(request),
            "can_change": self.has_change_permission(request),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [
                (None, {"fields": ["channel", "email", "components"]}),
                (
                    "Webhook",
                    {"fields": ["endpoint", "webhook_format", "secret", "confirmed_by_staff"]},
                ),
            ]
        state = (
            "State",
            {
                "fields": [
                    "state",
                    ("created_at", "confirmed_at", "confirmation_sent_at"),
                    ("failing_since", "quarantined_at", "bounced_at"),
                    "last_error",
                ]
            },
        )
        if obj.channel == Channel.WEBHOOK:
            return [
                (
                    None,
                    {
                        "fields": [
                            ("channel", "public_id"),
                            "endpoint",
                            "webhook_format",
                            "contact_email",
                            "audience",
                            "components",
                        ]
                    },
                ),
                ("Signing secret", {"fields": ["secret_status", "new_secret", "clear_secret"]}),
                state,
            ]
        if obj.channel == Channel.PUSH:
            # A browser's subscription: its push service URL and keys are the browser's own.
            return [(None, {"fields": [("channel", "public_id"), "endpoint", "components"]}), state]
        return [
            (None, {"fields": [("channel", "public_id"), "email", "audience", "components"]}),
            state,
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if obj.channel == Channel.PUSH:
            return [*self.readonly_fields, "endpoint"]
        if obj.channel == Channel.EMAIL:
            # An address is only ever the one its owner confirmed.
            return [*self.readonly_fields, "email"]
        return self.readonly_fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        form: type[ServiceForm]
        if obj is None:
            form = SubscriberAddForm
        elif obj.channel == Channel.WEBHOOK:
            form = WebhookChangeForm
        else:
            form = SubscriberChangeForm
        # django-stubs declare a form's _meta per instance; its metaclass sets it on the class.
        kwargs.update(form=form, fields=form._meta.fields)  # type: ignore[misc]
        return self.form_with_service_error(
            request, super().get_form(request, obj, change, **kwargs)
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        subscriber = self.get_object(request, unquote(object_id))
        if subscriber is not None and self.has_change_permission(request, subscriber):
            extra_context = {
                "can_test": subscriber.channel == Channel.WEBHOOK,
                "can_confirm": subscriber.state == SubscriberState.UNCONFIRMED,
                "can_reactivate": subscriber.state == SubscriberState.QUARANTINED,
                **(extra_context or {}),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    # Saving: writes go through the subscription services

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            created = self._create(data)
            obj.pk = created.pk
            obj.refresh_from_db()
            obj._state.adding = False
            return
        if isinstance(form, WebhookChangeForm) and (changes := form.settings_changed()):
            call_service(subscriptions.webhook_subscriber_update, subscriber=obj, **changes)
        if "audience" in form.changed_data:
            call_service(
                subscriptions.subscriber_set_audience,
                subscriber=obj,
                audience=data["audience"],
            )
        if "components" in form.changed_data:
            call_service(
                subscriptions.subscription_set_components,
                subscriber=obj,
                component_ids=component_ids(data["components"]),
            )
        if "state" in form.changed_data and data["state"] == SubscriberState.ACTIVE:
            self._activate(obj)
        obj.refresh_from_db()

    def _create(self, data) -> Subscriber:
        if data["channel"] == Channel.WEBHOOK:
            return call_service(
                subscriptions.webhook_subscriber_create,
                endpoint=data["endpoint"],
                email=data["email"],
                secret=data["secret"],
                webhook_format=data["webhook_format"],
                component_ids=component_ids(data["components"]),
                confirmed=data["confirmed_by_staff"],
            )
        # Asked to confirm by email, as if they had used the public form.
        call_service(
            subscriptions.subscription_request,
            email=data["email"],
            component_ids=component_ids(data["components"]),
        )
        return Subscriber.objects.get(channel=Channel.EMAIL, email=data["email"])

    def _activate(self, subscriber: Subscriber) -> None:
        """Confirm an unconfirmed subscriber, or re-enable a disabled one."""
        if subscriber.state == SubscriberState.UNCONFIRMED:
            subscriptions.subscription_confirm(subscriber=subscriber)
        elif subscriber.state == SubscriberState.QUARANTINED:
            subscriptions.subscriber_reactivate(subscriber=subscriber)

    def save_related(self, request, form, formsets, change):
        pass  # components are set by the services

    def delete_model(self, request, obj):
        subscriptions.subscription_cancel(subscriber=obj)

    # Actions

    @admin.action(description=gettext_lazy("Export selected as CSV"), permissions=["view"])
    def export_selected_csv(self, request, queryset):
        return csv_response(queryset)

    @admin.action(
        description=gettext_lazy("Send a test delivery to selected webhooks"),
        permissions=["change"],
    )
    def send_test_delivery(self, request, queryset):
        webhooks = queryset.filter(channel=Channel.WEBHOOK)
        if not webhooks:
            self.message_user(
                request, gettext("Test deliveries go to webhooks only."), messages.WARNING
            )
            return
        for subscriber in webhooks:
            self._report_test_delivery(request, subscriber)

    @admin.action(description=gettext_lazy("Confirm selected subscribers"), permissions=["change"])
    def confirm_selected(self, request, queryset):
        confirmed = 0
        for subscriber in queryset.filter(state=SubscriberState.UNCONFIRMED):
            subscriptions.subscription_confirm(subscriber=subscriber)
            self.log_change(request, subscriber, "Confirmed by staff.")
            confirmed += 1
        self.message_user(
            request,
            gettext("Confirmed %(done)s of %(total)s.")
            % {"done": confirmed, "total": len(queryset)},
        )

    @admin.action(
        description=gettext_lazy("Re-enable selected subscribers"), permissions=["change"]
    )
    def reactivate_selected(self, request, queryset):
        enabled = 0
        for subscriber in queryset.filter(state=SubscriberState.QUARANTINED):
            subscriptions.subscriber_reactivate(subscriber=subscriber)
            self.log_change(request, subscriber, "Re-enabled.")
            enabled += 1
        self.message_user(
            request,
            gettext("Re-enabled %(done)s of %(total)s.")
            % {"done": enabled, "total": len(queryset)},
        )

    def _report_test_delivery(self, request, subscriber: Subscriber) -> None:
        outcome = webhook_test_delivery(subscriber=subscriber)
        if outcome.sent:
            self.message_user(
                request,
                gettext("Test delivery to %(endpoint)s: sent.") % {"endpoint": subscriber.endpoint},
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request,
                gettext("Test delivery to %(endpoint)s failed: %(error)s")
                % {"endpoint": subscriber.endpoint, "error": outcome.error},
                messages.ERROR,
            )

    # The pages behind the buttons

    def export_view(self, request: HttpRequest) -> StreamingHttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return csv_response(Subscriber.objects.all())

    def import_view(self, request: HttpRequest) -> HttpResponse:
        return require_http_methods(["GET", "POST"])(self._import)(request)

    def _import(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        errors: list[str] = []
        if request.method == "POST":
            form = ImportForm(request.POST, request.FILES)
            if form.is_valid():
                result = subscriptions.subscribers_import_csv(data=form.cleaned_data["file"])
                if not result.errors:
                    self.message_user(
                        request,
                        ngettext(
                            "Imported %(created)s subscriber; %(already)s already subscribed.",
                            "Imported %(created)s subscribers; %(already)s already subscribed.",
                            result.created,
                        )
                        % {"created": result.created, "already": result.already_subscribed},
                        messages.SUCCESS,
                    )
                    return redirect("admin:incidents_subscriber_changelist")
                errors = result.errors
        else:
            form = ImportForm()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import subscribers",
            "form": form,
            "errors": errors[:IMPORT_ERRORS_SHOWN],
            "more_errors": max(len(errors) - IMPORT_ERRORS_SHOWN, 0),
        }
        return TemplateResponse(request, "admin/incidents/subscriber/import.html", context)

    def test_delivery_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return require_POST(self._test_delivery)(request, object_id)

    def _test_delivery(self, request: HttpRequest, object_id: str) -> HttpResponse:
        subscriber = self._subscriber_to_change(request, object_id)
        if subscriber.channel != Channel.WEBHOOK:
            self.message_user(
                request, gettext("Test deliveries go to webhooks only."), messages.WARNING
            )
        else:
            self._report_test_delivery(request, subscriber)
        return redirect("admin:incidents_subscriber_change", subscriber.pk)

    def confirm_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return require_POST(self._confirm)(request, object_id)

    def _confirm(self, request: HttpRequest, object_id: str) -> HttpResponse:
        subscriber = self._subscriber_to_change(request, object_id)
        if subscriber.state == SubscriberState.UNCONFIRMED:
            subscriptions.subscription_confirm(subscriber=subscriber)
            self.log_change(request, subscriber, "Confirmed by staff.")
            self.message_user(
                request,
                gettext("Confirmed %(subscriber)s.") % {"subscriber": subscriber},
                messages.SUCCESS,
            )
        return self._back(request, subscriber)

    def reactivate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return require_POST(self._reactivate)(request, object_id)

    def _reactivate(self, request: HttpRequest, object_id: str) -> HttpResponse:
        subscriber = self._subscriber_to_change(request, object_id)
        if subscriber.state == SubscriberState.QUARANTINED:
            subscriptions.subscriber_reactivate(subscriber=subscriber)
            self.log_change(request, subscriber, "Re-enabled.")
            self.message_user(
                request,
                gettext("Re-enabled %(subscriber)s.") % {"subscriber": subscriber},
                messages.SUCCESS,
            )
        return self._back(request, subscriber)

    def _subscriber_to_change(self, request: HttpRequest, object_id: str) -> Subscriber:
        subscriber = self.get_object(request, unquote(object_id))
        if subscriber is None:
            raise Http404("No such subscriber.")
        if not self.has_change_permission(request, subscriber):
            raise PermissionDenied
        return subscriber

    def _back(self, request: HttpRequest, subscriber: Subscriber) -> HttpResponse:
        target = request.POST.get("next", "")
        if url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return redirect(target)
        return redirect("admin:incidents_subscriber_change", subscriber.pk)

    # Columns and read-only fields

    @admin.display(description=gettext_lazy("address or webhook URL"))
    def address(self, subscriber):
        return str(subscriber)

    @admin.display(description=gettext_lazy("components"))
    def component_list(self, subscriber):
        if subscriber.all_components:
            return "All components"
        return ", ".join(component.name for component in subscriber.components.all())

    @admin.display(description=gettext_lazy("secret"))
    def secret_status(self, subscriber):
        return "•••• set" if subscriber.secret else "Not set"


# What was sent


def delivery_counts(event_ids: list[int]) -> dict[int, dict[str, int]]:
    """Queued, sent and failed deliveries of these events, in one query."""
    states: list[str] = [DeliveryState.QUEUED, DeliveryState.SENT, DeliveryState.FAILED]
    rows = (
        Delivery.objects.filter(event_id__in=event_ids)
        .values("event_id")
        .order_by()
        .annotate(**{state: Count("pk", filter=Q(state=state)) for state in states})
    )
    return {row.pop("event_id"): row for row in rows}


NO_DELIVERIES = {DeliveryState.QUEUED: 0, DeliveryState.SENT: 0, DeliveryState.FAILED: 0}


class EventChangeList(ChangeList):
    """Counts deliveries for the page's events only: never across the whole ledger."""

    def get_results(self, request):
        super().get_results(request)
        counts = delivery_counts([event.pk for event in self.result_list])
        for event in self.result_list:
            event.delivery_counts = counts.get(event.pk, NO_DELIVERIES)


@admin.register(NotificationEvent)
class NotificationEventAdmin(ReadOnlyAdmin):
    """What subscribers were told, and how far each message got. Read-only."""

    list_display = [
        "created_at",
        "kind",
        "incident_link",
        "short_subject",
        "queued",
        "sent",
        "failed",
        "expanded_at",
    ]
    list_display_links = ["created_at"]
    list_filter = ["kind"]
    list_select_related = ["incident"]
    search_fields = ["subject", "incident__name"]
    show_full_result_count = False
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "kind",
                    "incident_link",
                    "component_names",
                    ("created_at", "expanded_at"),
                    "subject",
                ]
            },
        ),
        ("Message", {"fields": ["text_body"], "classes": ["collapse"]}),
    ]
    readonly_fields = [
        "kind",
        "incident_link",
        "component_names",
        "created_at",
        "expanded_at",
        "subject",
        "text_body",
    ]

    def get_changelist(self, request, **kwargs):
        return EventChangeList

    def changelist_view(self, request, extra_context=None):
        incident_id = request.GET.get("incident__id__exact", "")
        if incident_id.isdigit():
            incident = Incident.objects.filter(pk=incident_id).first()
            if incident is not None:
                title = f"Notifications about “{incident}”"
                extra_context = {"title": title, **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        event = self.get_object(request, unquote(object_id))
        if event is not None:
            failed = event.deliveries.filter(state=DeliveryState.FAILED)
            extra_context = {
                "delivery_counts": delivery_counts([event.pk]).get(event.pk, NO_DELIVERIES),
                "failed_deliveries": failed.select_related("subscriber").order_by("id")[
                    :FAILED_DELIVERIES_SHOWN
                ],
                "failed_shown": FAILED_DELIVERIES_SHOWN,
                **(extra_context or {}),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    # Columns

    @admin.display(description=gettext_lazy("incident"), ordering="incident__name")
    def incident_link(self, event):
        if event.incident is None:
            return "–"
        return format_html(
            '<a href="{}">{}</a> (<a href="{}">its notifications</a>)',
            reverse("admin:incidents_incident_change", args=[event.incident_id]),
            event.incident.name,
            reverse("admin:incidents_notificationevent_changelist")
            + f"?incident__id__exact={event.incident_id}",
        )

    @admin.display(description=gettext_lazy("subject"), ordering="subject")
    def short_subject(self, event):
        return Truncator(event.subject).chars(80) or "(not rendered yet)"

    @admin.display(description=gettext_lazy("components"))
    def component_names(self, event):
        if not event.component_ids:
            return "–"
        names = Component.objects.filter(pk__in=event.component_ids).values_list("name", flat=True)
        return ", ".join(names)

    @admin.display(description=gettext_lazy("queued"))
    def queued(self, event):
        return event.delivery_counts[DeliveryState.QUEUED]

    @admin.display(description=gettext_lazy("sent"))
    def sent(self, event):
        return event.delivery_counts[DeliveryState.SENT]

    @admin.display(description=gettext_lazy("failed"))
    def failed(self, event):
        return event.delivery_counts[DeliveryState.FAILED]

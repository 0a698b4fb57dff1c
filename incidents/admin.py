"""The staff side of incidents and maintenances. Forms collect input; services do the writes."""

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotAllowed,
    QueryDict,
)
from django.shortcuts import redirect
from django.template.defaultfilters import linebreaksbr, pluralize
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from components.models import Component
from incidents import (
    admin_subscribers,  # noqa: F401 - registers the subscriber admin
    services,
)
from incidents.admin_series import IncidentPermissions, cancel_occurrence, occurrence_context
from incidents.automatic import incident_draft_discard, incident_draft_publish
from incidents.forms import (
    MAINTENANCE_NOTIFY_FLAGS,
    IncidentChangeForm,
    IncidentCreateForm,
    MaintenanceChangeForm,
    MaintenanceCreateForm,
    ServiceForm,
    accepts_postmortem,
    accepts_updates,
    component_fieldsets,
    initial_from_template,
    reach_component_ids,
    reach_values,
)
from incidents.models import (
    Incident,
    IncidentDraft,
    IncidentTemplate,
    IncidentUpdate,
    IncidentUpdateTranslation,
    ScheduledMaintenance,
)
from incidents.notify.selectors import notifications_of_incident, reach
from incidents.postmortem_forms import PostmortemEditor
from incidents.postmortems import generated_timeline, postmortem_initial
from incidents.selectors import silence_of, with_silence
from incidents.series import services as series_services
from statuspage.lib.service_admin import ServiceFormAdmin, call_service
from statuspage.models import PageSettings

# The fields the reach of "Notify subscribers" depends on (htmx sends them with each ask).
REACH_FIELDS = (
    "[name^='component_'], [name='affected_components'], [name='deliver_notifications'], "
    "[name='backfilled']"
)


def update_added(update: IncidentUpdate) -> dict:
    """A change-message entry for the history, in the admin's own format."""
    return {"added": {"name": str(IncidentUpdate._meta.verbose_name), "object": str(update)}}


class IncidentUpdateInline(admin.StackedInline):
    """Posted updates, newest first: only their wording and display time can be corrected."""

    model = IncidentUpdate
    fields = [
        "status",
        "body",
        "display_at",
        "components_changed",
        "translated",
        "author",
        "created_at",
    ]
    readonly_fields = ["status", "components_changed", "translated", "author", "created_at"]
    extra = 0
    can_delete = False
    verbose_name_plural = "updates"

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("author")
            .prefetch_related("affected_components__component", "translations")
        )

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=gettext_lazy("translations"))
    def translated(self, update):
        if update.pk is None or len(PageSettings.load().languages) < 2:
            return "—"
        url = reverse("admin:incidents_incidentupdate_change", args=[update.pk])
        languages = ", ".join(t.get_language_display() for t in update.translations.all())
        return format_html('<a href="{}">{}</a>', url, languages or gettext("Add a translation"))

    @admin.display(description=gettext_lazy("components"))
    def components_changed(self, update):
        return format_html_join(
            ", ",
            "{}: {} → {}",
            (
                (a.component.name, a.get_old_status_display(), a.get_new_status_display())
                for a in update.affected_components.all()
            ),
        )


def translation_languages() -> list[tuple[str, str]]:
    """The languages an update may be translated into: the enabled ones but the default."""
    page = PageSettings.load()
    names = dict(settings.LANGUAGES)
    return [(code, names[code]) for code in page.languages if code != page.default_language]


class IncidentUpdateTranslationInline(admin.StackedInline):
    model = IncidentUpdateTranslation
    fields = ["language", "body"]
    extra = 0
    verbose_name_plural = "translations, shown to visitors and subscribers of that language"

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "language":
            return forms.ChoiceField(choices=translation_languages(), label="Language")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_max_num(self, request, obj=None, **kwargs):
        return len(translation_languages())


@admin.register(IncidentUpdate)
class IncidentUpdateAdmin(admin.ModelAdmin):
    """An update's translations, one per enabled language but the page's default. The
    update itself is corrected on its incident's page; it is shown here as it reads."""

    fields = ["incident", "status", "display_at", "original"]
    readonly_fields = ["incident", "status", "display_at", "original"]
    inlines = [IncidentUpdateTranslationInline]

    def get_model_perms(self, request):
        return {}  # reached from an incident's updates, not the admin's index

    def save_model(self, request, obj, form, change):
        pass  # the update is read-only here: only its translations are written

    def save_formset(self, request, form, formset, change):
        """Staff's translations, through the service."""
        saved = formset.save(commit=False)
        # The inline's forms checked each translation as the model does.
        services.update_translations_save(
            update=form.instance,
            saved=saved,
            deleted=formset.deleted_objects,
        )

    def has_add_permission(self, request):
        return False

    def delete_view(self, request, object_id, extra_context=None):
        raise PermissionDenied  # an update goes with its incident (incident_delete)

    def render_change_form(self, request, context, *args, **kwargs):
        response = super().render_change_form(request, context, *args, **kwargs)
        # Deleting an incident asks every registered admin of what goes with it (this one
        # too), so the permission stays; only the button is hidden here.
        if isinstance(response, TemplateResponse) and response.context_data is not None:
            response.context_data["has_delete_permission"] = False
        return response

    @admin.display(description="body")
    def original(self, update):
        return linebreaksbr(update.body, autoescape=True)


@admin.register(Incident)
class IncidentAdmin(ServiceFormAdmin[Incident]):
    add_form: type[ServiceForm] = IncidentCreateForm
    form = IncidentChangeForm
    change_form_template = "admin/incidents/incident/change_form.html"
    list_display = [
        "name",
        "status",
        "impact",
        "started_at",
        "updated_at",
        "since_last_update",
        "component_names",
    ]
    list_filter = ["kind", "status", "impact", "internal"]
    search_fields = ["name"]
    readonly_fields = [
        "public_id",
        "kind",
        "current_status",
        "impact",
        "started_at",
        "resolved_at",
        "backfilled",
        "postmortem_published_at",
        "postmortem_editor_link",
        "created_by",
        "notifications",
    ]
    inlines = [IncidentUpdateInline]
    actions = ["resolve_selected"]
    close_label = "Resolve"
    closed_label = "Resolved"
    offers_templates = True

    # Pages

    class Media:
        css = {"all": ["css/admin.css"]}  # the silence column's colours

    def get_queryset(self, request):
        interval = PageSettings.load().update_interval
        return with_silence(
            super().get_queryset(request).prefetch_related("components"), interval=interval
        )

    def get_urls(self):
        return [
            path(
                "reach/",
                self.admin_site.admin_view(self.reach_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_reach",
            ),
            path(
                "<path:object_id>/reach/",
                self.admin_site.admin_view(self.reach_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_reach",
            ),
            path(
                "<path:object_id>/postmortem/",
                self.admin_site.admin_view(self.postmortem_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_postmortem",
            ),
            path(
                "<path:object_id>/postmortem/preview/",
                self.admin_site.admin_view(self.postmortem_preview_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_postmortem_preview",
            ),
            path(
                "<path:object_id>/resolve/",
                self.admin_site.admin_view(self.resolve_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_resolve",
            ),
            *super().get_urls(),
        ]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []

    def get_inlines(self, request, obj):
        return self.inlines if obj else []

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = self.form if obj else self.add_form
        # django-stubs declare a form's _meta per instance; its metaclass sets it on the class.
        kwargs.update(form=form, fields=form._meta.fields)  # type: ignore[misc]
        return self.form_with_service_error(
            request, super().get_form(request, obj, change, **kwargs)
        )

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.add_fieldsets(request)
        fieldsets: list[tuple[str | None, dict[str, Any]]] = [
            (
                None,
                {
                    "fields": [
                        ("name", "internal"),
                        ("public_id", "kind"),
                        ("current_status", "impact", "impact_override"),
                        ("started_at", "resolved_at", "backfilled"),
                        "created_by",
                        "notifications",
                    ]
                },
            )
        ]
        if not self.has_change_permission(request, obj):
            return fieldsets
        if accepts_updates(obj):
            fieldsets.append(
                (
                    "Post an update",
                    {"fields": ["status", "body", ("deliver_notifications", "display_at")]},
                )
            )
            if not obj.backfilled:
                fieldsets += component_fieldsets(Component.objects.in_page_order())
        if accepts_postmortem(obj):
            fieldsets.append(
                (
                    "Postmortem",
                    {
                        "fields": [
                            "postmortem_editor_link",
                            *([] if obj.postmortem else ["postmortem_body"]),
                            (
                                "publish_postmortem",
                                "postmortem_notify_subscribers",
                                "postmortem_published_at",
                            ),
                        ]
                    },
                )
            )
        return fieldsets

    def add_fieldsets(self, request):
        return [
            (
                None,
                {
                    "fields": [
                        ("name", "internal"),
                        "status",
                        "body",
                        ("impact_override", "deliver_notifications"),
                        ("started_at", "backfilled"),
                    ]
                },
            ),
            *component_fieldsets(Component.objects.in_page_order()),
        ]

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        template_id = initial.pop("template", "")
        if self.offers_templates and isinstance(template_id, str) and template_id.isdigit():
            template = IncidentTemplate.objects.filter(pk=template_id).first()
            if template:
                initial.update(initial_from_template(template))
        return initial

    def add_view(self, request, form_url="", extra_context=None):
        if self.offers_templates:
            extra_context = {
                "incident_templates": IncidentTemplate.objects.all(),
                "template_id": request.GET.get("template", ""),
                **(extra_context or {}),
            }
        return super().add_view(request, form_url, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        incident = self.get_object(request, unquote(object_id))
        if incident and incident.is_maintenance and self.model is Incident:
            return redirect("admin:incidents_scheduledmaintenance_change", incident.pk)
        if incident and accepts_updates(incident) and self.has_change_permission(request, incident):
            extra_context = {
                "close_url": reverse(
                    f"admin:{self.opts.app_label}_{self.opts.model_name}_resolve",
                    args=[incident.pk],
                ),
                "close_label": self.close_label,
                **(extra_context or {}),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    # Saving: every write of state goes through a service

    def save_model(self, request, obj, form, change):
        if not change:
            created = call_service(
                services.incident_create, **form.create_kwargs(), author=request.user
            )
            obj.pk = created.pk
            obj.refresh_from_db()
            obj._state.adding = False
            return
        if {"name", "impact_override", "internal"} & set(form.changed_data):
            call_service(
                services.incident_edit,
                incident=obj,
                name=form.cleaned_data["name"],
                impact_override=form.cleaned_data.get("impact_override", obj.impact_override),
                internal=form.cleaned_data.get("internal", obj.internal),
            )
        if "postmortem_body" in form.changed_data:
            call_service(  # a draft until it is published
                services.postmortem_save_draft,
                incident=obj,
                body=form.cleaned_data["postmortem_body"],
            )
        form.posted_update = None
        if form.update_requested():
            form.posted_update = call_service(
                services.incident_post_update,
                incident=obj,
                author=request.user,
                **form.update_kwargs(),
            )
        if form.cleaned_data.get("publish_postmortem"):
            call_service(
                services.postmortem_publish,
                incident=obj,
                body=form.cleaned_data.get("postmortem_body"),  # absent: a structured one
                notify_subscribers=form.cleaned_data["postmortem_notify_subscribers"],
            )
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        # Components are set by the services; only the updates inline is saved here.
        for formset in formsets:
            self.save_formset(request, form, formset, change)

    def save_formset(self, request, form, formset, change):
        """Corrections of posted updates' wording and time, through the service."""
        formset.save(commit=False)
        for update, fields in formset.changed_objects:
            call_service(
                services.incident_update_edit,
                update=update,
                **{name: getattr(update, name) for name in fields},
            )

    def delete_model(self, request, obj):
        services.incident_delete(incident=obj)

    def delete_queryset(self, request, queryset):
        for incident in queryset:
            services.incident_delete(incident=incident)

    def response_post_save_add(self, request, obj):
        # An incident just opened is where its next update will be posted.
        return redirect(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", obj.pk)

    def construct_change_message(self, request, form, formsets, add=False):
        message = super().construct_change_message(request, form, formsets, add)
        update = getattr(form, "posted_update", None)
        if update is not None:
            message.append(update_added(update))
        return message

    # Who "Notify subscribers" reaches

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        form = context["adminform"].form
        if "deliver_notifications" in form.fields:
            region = self.reach_region(request, form, obj)
            # The bound field copied the help text when reach_region read the form's values.
            form.fields["deliver_notifications"].help_text = region
            form["deliver_notifications"].help_text = region
        return super().render_change_form(request, context, add, change, form_url, obj)

    def reach_region(
        self, request: HttpRequest, form: forms.BaseForm, incident: Incident | None
    ) -> str:
        """The line beside "Notify subscribers": how many it reaches with the components the
        form names now (a template's, or those sent back), asked again (htmx) whenever the
        form changes."""
        name = f"admin:{self.opts.app_label}_{self.opts.model_name}_reach"
        url = reverse(name, args=[incident.pk]) if incident else reverse(name)
        try:
            text = self._reach_text(request, incident, reach_values(form))
        except ValidationError:  # a form sent back with errors: as it first came
            text = self._reach_text(request, incident, None)
        return format_html(
            '<span class="notify-reach" hx-get="{}" hx-trigger="change from:closest form" '
            'hx-include="{}" aria-live="polite">{}</span>',
            url,
            REACH_FIELDS,
            text,
        )

    def reach_view(self, request: HttpRequest, object_id: str | None = None) -> HttpResponse:
        return require_GET(self._reach)(request, object_id)

    def _reach(self, request: HttpRequest, object_id: str | None) -> HttpResponse:
        incident = None
        if object_id is not None:
            incident = self.get_object(request, unquote(object_id))
            if incident is None:
                raise Http404
            if not self.has_change_permission(request, incident):
                raise PermissionDenied
        elif not self.has_add_permission(request):
            raise PermissionDenied
        try:
            text = self._reach_text(request, incident, request.GET)
        except ValidationError as error:
            return HttpResponseBadRequest(" ".join(error.messages))
        return HttpResponse(text)

    def _reach_text(
        self, request: HttpRequest, incident: Incident | None, data: QueryDict | None
    ) -> str:
        """What the update will reach: the incident's components and those the form names
        (`data`: its fields; None for a form not yet sent, notifying by default)."""
        chosen = reach_component_ids(data) if data is not None else set()
        notify = data is None or data.get("deliver_notifications") == "on"
        backfilled = incident.backfilled if incident else bool(data and data.get("backfilled"))
        ids = chosen | set(incident.components.values_list("pk", flat=True) if incident else ())
        internal = incident.internal if incident else bool(data and data.get("internal"))
        context = {
            "reach": reach(ids, internal=internal),
            "notify": notify,
            "backfilled": backfilled,
        }
        return render_to_string("admin/incidents/incident/reach.html", context, request).strip()

    # Closing in one click

    @admin.action(description=gettext_lazy("Resolve selected incidents"), permissions=["change"])
    def resolve_selected(self, request, queryset):
        closed = 0
        for incident in queryset:
            if incident.is_closed:
                continue
            try:
                update = services.incident_resolve(incident=incident, author=request.user)
            except ValidationError as error:
                self.message_user(
                    request, f"{incident}: {' '.join(error.messages)}", messages.ERROR
                )
                continue
            self.log_change(request, incident, [update_added(update)])
            closed += 1
        self.message_user(request, f"{self.closed_label} {closed} of {len(queryset)}.")

    # The postmortem editor: sections, timeline and action items (incidents/postmortem_forms.py)

    def postmortem_editor_link(self, obj: Incident) -> str:
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_postmortem", args=[obj.pk]
        )
        return format_html(
            '<a class="button" href="{}">{}</a>', url, gettext("Open the postmortem editor")
        )

    postmortem_editor_link.short_description = gettext_lazy(  # type: ignore[attr-defined]
        "Structured postmortem"
    )

    def _postmortem_incident(self, request: HttpRequest, object_id: str) -> Incident:
        incident = self.get_object(request, unquote(object_id))
        if incident is None or incident.is_maintenance:
            raise Http404("No incident with this id.")
        if not self.has_change_permission(request, incident):
            raise PermissionDenied
        return incident

    def postmortem_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        incident = self._postmortem_incident(request, object_id)
        editor_url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_postmortem", args=[incident.pk]
        )
        preview = None
        if request.method != "POST":
            editor = PostmortemEditor(incident, initial=postmortem_initial(incident))
        elif "_unpublish" in request.POST:
            try:
                services.postmortem_revert(incident=incident)
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
            else:
                self.log_change(request, incident, gettext("Unpublished the postmortem."))
                self.message_user(request, gettext("The postmortem is a draft again."))
            return redirect(editor_url)
        elif "_regenerate" in request.POST:
            editor = PostmortemEditor(incident, request.POST)
            if request.POST.get("confirm_regenerate"):
                editor = PostmortemEditor(
                    incident, request.POST, timeline=generated_timeline(incident)
                )
                self.message_user(
                    request,
                    gettext(
                        "The timeline was drawn again from the incident. Nothing is saved "
                        "until you save."
                    ),
                    messages.WARNING,
                )
            else:
                editor.form.add_error(
                    "confirm_regenerate",
                    gettext("Tick this box to replace the timeline's entries."),
                )
        else:
            editor = PostmortemEditor(incident, request.POST)
            if editor.is_valid():
                postmortem = editor.postmortem()
                if "_preview" in request.POST:
                    preview = postmortem
                else:
                    saved = self._save_postmortem(request, incident, editor, postmortem)
                    if saved:
                        return redirect(editor_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Postmortem: %(incident)s") % {"incident": incident.name},
            "incident": incident,
            "editor": editor,
            "preview": preview,
            "previewed": "_preview" in request.POST,
            "can_publish": accepts_postmortem(incident),
            "change_url": reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[incident.pk]
            ),
            "preview_url": reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_postmortem_preview",
                args=[incident.pk],
            ),
        }
        return TemplateResponse(request, "admin/incidents/incident/postmortem.html", context)

    def _save_postmortem(
        self, request: HttpRequest, incident: Incident, editor: PostmortemEditor, postmortem
    ) -> bool:
        publish = "_publish" in request.POST
        try:
            if publish:
                services.postmortem_publish(
                    incident=incident,
                    structured=postmortem,
                    notify_subscribers=editor.form.cleaned_data["notify_subscribers"],
                )
            else:
                services.postmortem_save_draft(incident=incident, structured=postmortem)
        except ValidationError as error:
            editor.form.add_error(None, error.messages)
            return False
        done = gettext("Published the postmortem.") if publish else gettext("Saved the postmortem.")
        self.log_change(request, incident, done)
        self.message_user(request, done, messages.SUCCESS)
        return True

    def postmortem_preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """htmx: the public HTML of the postmortem as the form stands, or its errors."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        incident = self._postmortem_incident(request, object_id)
        editor = PostmortemEditor(incident, request.POST)
        preview = editor.postmortem() if editor.is_valid() else None
        return TemplateResponse(
            request,
            "admin/incidents/incident/postmortem.html#postmortem-preview",
            {"editor": editor, "preview": preview, "incident": incident, "previewed": True},
        )

    def resolve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return require_POST(self._resolve)(request, object_id)

    def _resolve(self, request: HttpRequest, object_id: str) -> HttpResponse:
        incident = self.get_object(request, unquote(object_id))
        if incident is None:
            # ModelAdmin's own "no such object" answer, which django-stubs leave out (private).
            return self._get_obj_does_not_exist_redirect(  # type: ignore[attr-defined]
                request, self.opts, object_id
            )
        if not self.has_change_permission(request, incident):
            raise PermissionDenied
        change_url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[incident.pk]
        )
        if incident.is_closed:
            self.message_user(
                request,
                gettext("“%(incident)s” is already closed.") % {"incident": incident},
                messages.WARNING,
            )
            return redirect(change_url)
        author = request.user
        assert author.is_authenticated  # it may change the incident: staff, signed in
        try:
            update = services.incident_resolve(incident=incident, author=author)
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return redirect(change_url)
        self.log_change(request, incident, [update_added(update)])
        self.message_user(request, f"{update}.", messages.SUCCESS)
        return redirect(change_url)

    # Columns

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def current_status(self, incident):
        return incident.get_status_display()

    @admin.display(description=gettext_lazy("since last update"), ordering="last_update_at")
    def since_last_update(self, incident):
        """Open incidents: the time since the last public update, in words and colour (amber
        past 80 % of the promised interval, red past all of it); closed ones: nothing."""
        silence = silence_of(incident)
        if silence is None:
            return self.get_empty_value_display()
        minutes = int(silence.since.total_seconds() // 60)
        words = {"ok": "", "amber": " · update due soon", "red": " · overdue"}[silence.state]
        return format_html(
            '<span class="silence silence-{}">{} min{}</span>', silence.state, minutes, words
        )

    @admin.display(description=gettext_lazy("components"))
    def component_names(self, incident):
        return ", ".join(component.name for component in incident.components.all())

    @admin.display(description=gettext_lazy("subscribers told"))
    def notifications(self, incident):
        counts = notifications_of_incident(incident)
        if not counts["events"]:
            return "Nothing sent yet."
        url = reverse("admin:incidents_notificationevent_changelist")
        return format_html(
            '<a href="{}?incident__id__exact={}">{} notification{}</a>: '
            "{} sent, {} queued, {} failed",
            url,
            incident.pk,
            counts["events"],
            pluralize(counts["events"]),
            counts["sent"],
            counts["queued"],
            counts["failed"],
        )


@admin.register(ScheduledMaintenance)
class MaintenanceAdmin(IncidentPermissions, IncidentAdmin):
    """Maintenances get their own entry; whoever may run incidents may run maintenances."""

    add_form = MaintenanceCreateForm
    form = MaintenanceChangeForm
    list_display = [
        "name",
        "status",
        "scheduled_for",
        "scheduled_until",
        "since_last_update",
        "component_names",
    ]
    list_filter = ["status", "internal"]
    readonly_fields = [
        *IncidentAdmin.readonly_fields,
        "scheduled_for",
        "scheduled_until",
        "scheduled_auto_in_progress",
        "scheduled_auto_completed",
    ]
    actions = ["complete_selected"]
    close_label = "Complete"
    closed_label = "Completed"
    offers_templates = False

    def get_queryset(self, request):
        return super().get_queryset(request).maintenances().select_related("series")

    def get_urls(self):
        return [
            path(
                "<path:object_id>/cancel-occurrence/",
                self.admin_site.admin_view(require_POST(self.cancel_occurrence_view)),
                name=f"{self.opts.app_label}_{self.opts.model_name}_cancel_occurrence",
            ),
            *super().get_urls(),
        ]

    def cancel_occurrence_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return cancel_occurrence(self, request, object_id)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        incident = self.get_object(request, unquote(object_id))
        if incident is not None:
            extra_context = {**occurrence_context(incident), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        if obj is not None and not accepts_updates(obj):
            return [*readonly, *MAINTENANCE_NOTIFY_FLAGS]  # nothing left to announce
        return readonly

    def add_fieldsets(self, request):
        return [
            (None, {"fields": [("name", "internal"), "status", "body", "deliver_notifications"]}),
            (
                "Schedule",
                {
                    "fields": [
                        ("scheduled_for", "scheduled_until"),
                        ("scheduled_auto_in_progress", "scheduled_auto_completed"),
                    ]
                },
            ),
            ("Subscribers", {"fields": MAINTENANCE_NOTIFY_FLAGS}),
            ("Components", {"fields": ["affected_components"]}),
        ]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None:
            fieldsets.insert(
                1,
                (
                    "Schedule",
                    {
                        "fields": [
                            ("scheduled_for", "scheduled_until"),
                            ("scheduled_auto_in_progress", "scheduled_auto_completed"),
                            *MAINTENANCE_NOTIFY_FLAGS,
                        ]
                    },
                ),
            )
        return fieldsets

    def save_model(self, request, obj, form, change):
        flags = [name for name in MAINTENANCE_NOTIFY_FLAGS if name in form.changed_data]
        if change and flags:
            services.maintenance_set_notifications(
                incident=obj, **{name: form.cleaned_data[name] for name in flags}
            )
        super().save_model(request, obj, form, change)
        if change and obj.series_id is not None and form.changed_data:
            # Edited alone: changes of the whole series leave it as it is now.
            series_services.series_occurrence_detach(incident=obj)

    @admin.action(
        description=gettext_lazy("Complete selected maintenances"), permissions=["change"]
    )
    def complete_selected(self, request, queryset):
        return self.resolve_selected(request, queryset)


@admin.register(IncidentTemplate)
class IncidentTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "title", "status", "component_status"]
    search_fields = ["name", "title"]
    filter_horizontal = ["components"]


@admin.register(IncidentDraft)
class IncidentDraftAdmin(admin.ModelAdmin):
    """Incidents Beacon prepared (for checks, alerts or a surge of visitor reports): staff read
    them and publish (or discard) in a click."""

    list_display = ["name", "component", "source", "created_at", "state"]
    list_filter = [("published_at", admin.EmptyFieldListFilter), "source"]
    readonly_fields = [
        "source",
        "component",
        "other_components",
        "name",
        "body",
        "component_status",
        "reason",
        "created_at",
        "published_incident",
        "published_at",
        "published_by",
        "discarded_at",
        "discard_reason",
    ]
    change_form_template = "admin/incidents/incidentdraft/change_form.html"

    def has_add_permission(self, request):
        return False  # checks prepare drafts; staff open incidents themselves

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("incidents.add_incident")

    def has_view_permission(self, request, obj=None):
        return self.has_change_permission(request, obj) or super().has_view_permission(request, obj)

    @admin.display(description=gettext_lazy("State"))
    def state(self, draft: IncidentDraft) -> str:
        if draft.published_at:
            return "Published"
        if draft.discarded_at:
            return "Discarded"
        return "Waiting for staff"

    def get_urls(self):
        return [
            path(
                "<path:object_id>/publish/",
                self.admin_site.admin_view(require_POST(self.publish_view)),
                name="incidents_incidentdraft_publish",
            ),
            path(
                "<path:object_id>/discard/",
                self.admin_site.admin_view(require_POST(self.discard_view)),
                name="incidents_incidentdraft_discard",
            ),
            *super().get_urls(),
        ]

    def publish_view(self, request, object_id):
        draft = self._draft(request, object_id)
        try:
            incident = incident_draft_publish(draft=draft, author=request.user)
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return redirect("admin:incidents_incidentdraft_change", draft.pk)
        self.log_change(request, draft, "Published.")
        self.message_user(
            request, gettext("Published “%(incident)s”.") % {"incident": incident}, messages.SUCCESS
        )
        return redirect("admin:incidents_incident_change", incident.pk)

    def discard_view(self, request, object_id):
        draft = self._draft(request, object_id)
        incident_draft_discard(draft=draft, reason=f"Discarded by {request.user}.")
        self.log_change(request, draft, "Discarded.")
        self.message_user(
            request, gettext("Discarded “%(draft)s”.") % {"draft": draft}, messages.SUCCESS
        )
        return redirect("admin:incidents_incidentdraft_changelist")

    def _draft(self, request, object_id) -> IncidentDraft:
        draft = self.get_object(request, unquote(object_id))
        if draft is None:
            raise Http404("No such draft.")
        if not self.has_change_permission(request, draft):
            raise PermissionDenied
        return draft

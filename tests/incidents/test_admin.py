from datetime import timedelta

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone

from components.models import ComponentStatus, ComponentStatusChange, StatusChangeCause
from incidents.models import (
    AffectedComponent,
    Impact,
    Incident,
    IncidentKind,
    IncidentStatus,
    IncidentUpdate,
)
from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import (
    IncidentTemplateFactory,
    StaffFactory,
    open_incident,
    schedule_maintenance,
    sign_in_staff,
)

ADD_URL = reverse("admin:incidents_incident_add")
MAINTENANCE_ADD_URL = reverse("admin:incidents_scheduledmaintenance_add")

pytestmark = pytest.mark.django_db


def change_url(incident):
    return reverse("admin:incidents_incident_change", args=[incident.pk])


def add_data(**fields):
    return {
        "name": "API errors",
        "status": IncidentStatus.INVESTIGATING,
        "body": "We are looking into it.",
        "impact_override": "",
        "deliver_notifications": "on",
        "started_at_0": "",
        "started_at_1": "",
        **fields,
    }


def maintenance_add_data(start, end, **fields):
    return {
        "name": "Database upgrade",
        "status": IncidentStatus.SCHEDULED,
        "body": "We will upgrade the database.",
        "scheduled_for_0": start.strftime("%Y-%m-%d"),
        "scheduled_for_1": start.strftime("%H:%M:%S"),
        "scheduled_until_0": end.strftime("%Y-%m-%d"),
        "scheduled_until_1": end.strftime("%H:%M:%S"),
        **fields,
    }


def change_data(incident, **fields):
    """What the change page posts when nothing is touched, with `fields` changed."""
    updates = list(incident.updates.all())
    data = {
        "name": incident.name,
        "status": incident.status,
        "body": "",
        "deliver_notifications": "on",
        "display_at_0": "",
        "display_at_1": "",
        "updates-TOTAL_FORMS": len(updates),
        "updates-INITIAL_FORMS": len(updates),
        "updates-MIN_NUM_FORMS": 0,
        "updates-MAX_NUM_FORMS": 1000,
    }
    for component in incident.components.all():
        data[f"component_{component.pk}"] = component.status
    for i, update in enumerate(updates):
        shown = timezone.localtime(update.display_at)
        data |= {
            f"updates-{i}-id": update.pk,
            f"updates-{i}-incident": incident.pk,
            f"updates-{i}-body": update.body,
            f"updates-{i}-display_at_0": shown.strftime("%Y-%m-%d"),
            f"updates-{i}-display_at_1": shown.strftime("%H:%M:%S"),
        }
    return data | fields


def test_responder_posts_incident_with_components_in_one_screen(client, responder):
    api, web = ComponentFactory(name="API"), ComponentFactory(name="Web")
    untouched = ComponentFactory(name="Billing")

    response = client.post(
        ADD_URL,
        add_data(
            **{
                f"component_{api.pk}": ComponentStatus.MAJOR_OUTAGE,
                f"component_{web.pk}": ComponentStatus.MAJOR_OUTAGE,
                f"component_{untouched.pk}": "",
            }
        ),
    )

    assert response.status_code == 302
    incident = Incident.objects.get()
    assert response["Location"] == change_url(incident)
    assert incident.status == IncidentStatus.INVESTIGATING
    assert incident.impact == Impact.CRITICAL
    assert incident.created_by == responder
    assert set(incident.components.all()) == {api, web}
    update = incident.updates.get()
    assert update.body == "We are looking into it."
    assert update.author == responder
    assert update.deliver_notifications
    assert {(a.component, a.new_status) for a in update.affected_components.all()} == {
        (api, ComponentStatus.MAJOR_OUTAGE),
        (web, ComponentStatus.MAJOR_OUTAGE),
    }
    changes = ComponentStatusChange.objects.all()
    assert {c.component for c in changes} == {api, web}
    assert {(c.cause, c.actor) for c in changes} == {(StatusChangeCause.INCIDENT, responder)}
    untouched.refresh_from_db()
    assert untouched.status == ComponentStatus.OPERATIONAL
    assert LogEntry.objects.filter(
        user=responder, action_flag=ADDITION, object_id=str(incident.pk)
    ).exists()


def test_add_page_offers_one_select_per_component_grouped(client, responder):
    group = ComponentGroupFactory(name="Platform")
    ComponentFactory(name="API", group=group)
    loose = ComponentFactory(name="Website")

    response = client.get(ADD_URL)

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.fields[f"component_{loose.pk}"].choices[0] == ("", "No change")
    titles = [fieldset.name for fieldset in response.context["adminform"]]
    assert "Platform" in titles
    assert "Components" in titles


def test_superuser_posts_incident_too(client):
    sign_in_staff(client, StaffFactory(is_superuser=True))
    api = ComponentFactory()

    response = client.post(ADD_URL, add_data(**{f"component_{api.pk}": "partial_outage"}))

    assert response.status_code == 302
    api.refresh_from_db()
    assert api.status == ComponentStatus.PARTIAL_OUTAGE


def test_backfilled_incident_with_component_statuses_shows_error_and_writes_nothing(
    client, responder
):
    api = ComponentFactory()
    yesterday = timezone.localtime() - timedelta(days=1)

    response = client.post(
        ADD_URL,
        add_data(
            status=IncidentStatus.RESOLVED,
            backfilled="on",
            started_at_0=yesterday.strftime("%Y-%m-%d"),
            started_at_1=yesterday.strftime("%H:%M:%S"),
            **{f"component_{api.pk}": ComponentStatus.MAJOR_OUTAGE},
        ),
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.non_field_errors()
    assert "A backfilled incident is history: it cannot change components." in errors
    assert not Incident.objects.exists()
    assert not IncidentUpdate.objects.exists()
    assert not ComponentStatusChange.objects.exists()
    assert not LogEntry.objects.exists()
    api.refresh_from_db()
    assert api.status == ComponentStatus.OPERATIONAL


def test_backfilled_incident_starts_in_the_past(client, responder):
    last_week = (timezone.localtime() - timedelta(days=7)).replace(microsecond=0)

    response = client.post(
        ADD_URL,
        add_data(
            status=IncidentStatus.RESOLVED,
            backfilled="on",
            started_at_0=last_week.strftime("%Y-%m-%d"),
            started_at_1=last_week.strftime("%H:%M:%S"),
        ),
    )

    assert response.status_code == 302
    incident = Incident.objects.get()
    assert incident.backfilled
    assert incident.started_at == last_week
    assert incident.status == IncidentStatus.RESOLVED


def test_missing_name_is_a_form_error(client, responder):
    response = client.post(ADD_URL, add_data(name=""))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["name"]
    assert not Incident.objects.exists()


def test_template_prefills_the_add_form(client, responder):
    api, web = ComponentFactory(), ComponentFactory()
    template = IncidentTemplateFactory(
        name="DB down",
        title="Database unavailable",
        status=IncidentStatus.IDENTIFIED,
        body="The primary database is down.",
        component_status=ComponentStatus.PARTIAL_OUTAGE,
    )
    template.components.set([api])

    response = client.get(ADD_URL, {"template": template.pk})

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form["name"].value() == "Database unavailable"
    assert form["status"].value() == IncidentStatus.IDENTIFIED
    assert form["body"].value() == "The primary database is down."
    assert form[f"component_{api.pk}"].value() == ComponentStatus.PARTIAL_OUTAGE
    assert form[f"component_{web.pk}"].value() == ""
    assert f'href="?template={template.pk}"' in response.text


def test_responder_posts_update_on_change_page(client, responder):
    api, web = ComponentFactory(), ComponentFactory()
    incident = open_incident(component_statuses={api: ComponentStatus.MAJOR_OUTAGE})

    response = client.post(
        change_url(incident),
        change_data(
            incident,
            status=IncidentStatus.IDENTIFIED,
            body="A bad deploy; rolling back.",
            **{
                f"component_{api.pk}": ComponentStatus.PARTIAL_OUTAGE,
                f"component_{web.pk}": ComponentStatus.DEGRADED_PERFORMANCE,
            },
        ),
    )

    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.IDENTIFIED
    update = incident.updates.first()
    assert update.body == "A bad deploy; rolling back."
    assert update.author == responder
    api.refresh_from_db()
    web.refresh_from_db()
    assert api.status == ComponentStatus.PARTIAL_OUTAGE
    assert web.status == ComponentStatus.DEGRADED_PERFORMANCE
    assert ComponentStatusChange.objects.filter(actor=responder).count() == 2
    entry = LogEntry.objects.get(user=responder, action_flag=CHANGE)
    assert "Added incident update" in entry.get_change_message()


def test_change_page_prefills_affected_components_with_their_status(client, responder):
    api, web = ComponentFactory(), ComponentFactory()
    incident = open_incident(component_statuses={api: ComponentStatus.MAJOR_OUTAGE})

    response = client.get(change_url(incident))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form[f"component_{api.pk}"].value() == ComponentStatus.MAJOR_OUTAGE
    assert form[f"component_{web.pk}"].value() == ""
    assert incident.public_id in response.text
    content_type = ContentType.objects.get_for_model(Incident)
    assert reverse("admin:view_on_site", args=[content_type.pk, incident.pk]) in response.text
    assert incident.get_absolute_url() == f"/incidents/{incident.public_id}/"


def test_saving_untouched_change_page_posts_no_update(client, responder):
    api = ComponentFactory()
    incident = open_incident(component_statuses={api: ComponentStatus.MAJOR_OUTAGE})

    response = client.post(change_url(incident), change_data(incident, name="API outage"))

    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.name == "API outage"
    assert incident.updates.count() == 1
    assert ComponentStatusChange.objects.count() == 1


def test_updates_inline_corrects_wording_of_a_posted_update(client, responder):
    incident = open_incident(body="We are investigting.")

    response = client.post(
        change_url(incident), change_data(incident, **{"updates-0-body": "We are investigating."})
    )

    assert response.status_code == 302
    assert incident.updates.get().body == "We are investigating."


def test_resolving_from_the_update_form_restores_components(client, responder):
    api = ComponentFactory()
    incident = open_incident(component_statuses={api: ComponentStatus.MAJOR_OUTAGE})

    response = client.post(
        change_url(incident), change_data(incident, status=IncidentStatus.RESOLVED)
    )

    assert response.status_code == 302
    api.refresh_from_db()
    assert api.status == ComponentStatus.OPERATIONAL


def test_resolve_button_returns_components_to_operational(client, responder):
    api, web = ComponentFactory(), ComponentFactory()
    incident = open_incident(
        component_statuses={api: ComponentStatus.MAJOR_OUTAGE, web: ComponentStatus.PARTIAL_OUTAGE}
    )
    resolve_url = reverse("admin:incidents_incident_resolve", args=[incident.pk])
    assert resolve_url in client.get(change_url(incident)).text

    response = client.post(resolve_url)

    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED
    assert incident.updates.first().author == responder
    api.refresh_from_db()
    web.refresh_from_db()
    assert api.status == web.status == ComponentStatus.OPERATIONAL
    assert LogEntry.objects.filter(
        user=responder, action_flag=CHANGE, object_id=str(incident.pk)
    ).exists()


def test_resolve_button_only_answers_post(client, responder):
    incident = open_incident()

    response = client.get(reverse("admin:incidents_incident_resolve", args=[incident.pk]))

    assert response.status_code == 405
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.INVESTIGATING


def test_resolve_selected_incidents_action(client, responder):
    api = ComponentFactory()
    first = open_incident(component_statuses={api: ComponentStatus.MAJOR_OUTAGE})
    second = open_incident(name="Slow logins")

    response = client.post(
        reverse("admin:incidents_incident_changelist"),
        {"action": "resolve_selected", "_selected_action": [first.pk, second.pk], "index": 0},
    )

    assert response.status_code == 302
    assert set(Incident.objects.values_list("status", flat=True)) == {IncidentStatus.RESOLVED}
    api.refresh_from_db()
    assert api.status == ComponentStatus.OPERATIONAL
    assert LogEntry.objects.filter(user=responder, action_flag=CHANGE).count() == 2


def test_changelist_shows_incidents_with_their_components(client, responder):
    api = ComponentFactory(name="Public API")
    open_incident(name="Errors on API", component_statuses={api: ComponentStatus.MAJOR_OUTAGE})

    response = client.get(
        reverse("admin:incidents_incident_changelist"), {"kind__exact": IncidentKind.INCIDENT}
    )

    assert response.status_code == 200
    assert "Errors on API" in response.text
    assert "Public API" in response.text


def test_publishing_postmortem_on_a_resolved_incident(client, responder):
    incident = open_incident()
    client.post(reverse("admin:incidents_incident_resolve", args=[incident.pk]))
    incident.refresh_from_db()

    response = client.post(
        change_url(incident),
        change_data(
            incident, postmortem_body="A config change took the API down.", publish_postmortem="on"
        ),
    )

    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.POSTMORTEM
    assert incident.postmortem_body == "A config change took the API down."
    assert incident.postmortem_published_at is not None


def test_publishing_an_empty_postmortem_is_a_form_error(client, responder):
    incident = open_incident()
    client.post(reverse("admin:incidents_incident_resolve", args=[incident.pk]))
    incident.refresh_from_db()

    response = client.post(
        change_url(incident),
        change_data(incident, name="Renamed", postmortem_body="", publish_postmortem="on"),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["postmortem_body"]
    incident.refresh_from_db()
    assert incident.name != "Renamed"
    assert incident.postmortem_published_at is None


def test_maintenance_add_form_schedules_a_maintenance(client, responder):
    database = ComponentFactory()
    start = timezone.localtime() + timedelta(days=1)
    end = start + timedelta(hours=2)

    response = client.post(
        MAINTENANCE_ADD_URL,
        maintenance_add_data(
            start,
            end,
            deliver_notifications="on",
            scheduled_auto_in_progress="on",
            scheduled_auto_completed="on",
            affected_components=[database.pk],
        ),
    )

    assert response.status_code == 302
    maintenance = Incident.objects.get()
    assert maintenance.kind == IncidentKind.MAINTENANCE
    assert maintenance.status == IncidentStatus.SCHEDULED
    assert maintenance.scheduled_for == start.replace(microsecond=0)
    assert list(maintenance.components.all()) == [database]
    assert maintenance.updates.get().body == "We will upgrade the database."
    database.refresh_from_db()
    assert database.status == ComponentStatus.OPERATIONAL
    assert LogEntry.objects.filter(user=responder, action_flag=ADDITION).exists()


def test_maintenance_without_an_end_is_a_form_error(client, responder):
    start = timezone.localtime() + timedelta(days=1)

    response = client.post(
        MAINTENANCE_ADD_URL,
        {
            "name": "Database upgrade",
            "status": IncidentStatus.SCHEDULED,
            "scheduled_for_0": start.strftime("%Y-%m-%d"),
            "scheduled_for_1": start.strftime("%H:%M:%S"),
        },
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["scheduled_for"]
    assert not Incident.objects.exists()


def test_maintenance_updates_and_completes_like_an_incident(client, responder):
    database = ComponentFactory()
    maintenance = schedule_maintenance(affected_components=[database])
    url = reverse("admin:incidents_scheduledmaintenance_change", args=[maintenance.pk])

    response = client.post(url, change_data(maintenance, status=IncidentStatus.IN_PROGRESS))

    assert response.status_code == 302
    database.refresh_from_db()
    assert database.status == ComponentStatus.UNDER_MAINTENANCE

    complete_url = reverse("admin:incidents_scheduledmaintenance_resolve", args=[maintenance.pk])
    assert client.post(complete_url).status_code == 302
    maintenance.refresh_from_db()
    database.refresh_from_db()
    assert maintenance.status == IncidentStatus.COMPLETED
    assert database.status == ComponentStatus.OPERATIONAL
    assert AffectedComponent.objects.filter(update__incident=maintenance).count() == 2


def test_maintenance_list_holds_only_maintenances(client, responder):
    schedule_maintenance(name="Database upgrade")
    open_incident(name="API errors")

    response = client.get(reverse("admin:incidents_scheduledmaintenance_changelist"))

    assert response.status_code == 200
    assert "Database upgrade" in response.text
    assert "API errors" not in response.text


def test_maintenance_opened_from_incident_list_goes_to_its_own_page(client, responder):
    maintenance = schedule_maintenance()

    response = client.get(change_url(maintenance))

    assert response.status_code == 302
    assert response["Location"] == reverse(
        "admin:incidents_scheduledmaintenance_change", args=[maintenance.pk]
    )


def test_view_only_staff_see_an_incident_read_only(client):
    viewer = StaffFactory()
    viewer.user_permissions.add(Permission.objects.get(codename="view_incident"))
    sign_in_staff(client, viewer)
    incident = open_incident(name="API errors")

    response = client.get(change_url(incident))

    assert response.status_code == 200
    assert "API errors" in response.text
    assert client.post(change_url(incident), change_data(incident)).status_code == 403


# Internal incidents and maintenances


def test_staff_open_an_internal_incident_and_make_it_public_later(client, responder):
    response = client.post(ADD_URL, add_data(name="Build farm down", internal="on"))
    assert response.status_code == 302
    incident = Incident.objects.get()
    assert incident.internal
    listed = client.get(reverse("admin:incidents_incident_changelist") + "?internal__exact=1")
    assert "Build farm down" in listed.content.decode()

    response = client.post(change_url(incident), change_data(incident))  # box left unticked
    assert response.status_code == 302
    incident.refresh_from_db()
    assert not incident.internal


def test_staff_schedule_an_internal_maintenance(client, responder):
    start = timezone.localtime() + timedelta(days=1)
    end = start + timedelta(hours=2)
    response = client.post(
        MAINTENANCE_ADD_URL, maintenance_add_data(start, end, name="Runner upgrade", internal="on")
    )
    assert response.status_code == 302
    assert Incident.objects.get().internal

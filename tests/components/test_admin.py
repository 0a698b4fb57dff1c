import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.urls import reverse

from components.models import (
    Component,
    ComponentGroup,
    ComponentStatus,
    ComponentStatusChange,
    StatusChangeCause,
)
from components.services import component_set_status
from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import StaffFactory, sign_in_staff

CHANGELIST_URL = reverse("admin:components_component_changelist")

pytestmark = pytest.mark.django_db


def form_data(**fields):
    """What the component's add or change page posts, with `fields` given."""
    return {
        "description": "",
        "group": "",
        "showcase": "on",
        "start_date": "",
        "automation": "automatic",
        "auto_incident": "off",
        "auto_incident_recovery": "resolved",
        "status_changes-TOTAL_FORMS": 0,
        "status_changes-INITIAL_FORMS": 0,
        **fields,
    }


def test_list_editable_status_change_records_staff_change_with_actor(client, responder):
    api = ComponentFactory(name="API")
    web = ComponentFactory(name="Web")

    response = client.post(
        CHANGELIST_URL,
        {
            "form-TOTAL_FORMS": 2,
            "form-INITIAL_FORMS": 2,
            "form-0-id": api.pk,
            "form-0-status": ComponentStatus.PARTIAL_OUTAGE,
            "form-1-id": web.pk,
            "form-1-status": ComponentStatus.OPERATIONAL,
            "_save": "Save",
        },
    )

    assert response.status_code == 302
    api.refresh_from_db()
    assert api.status == ComponentStatus.PARTIAL_OUTAGE
    change = ComponentStatusChange.objects.get()
    assert change.component == api
    assert change.from_status == ComponentStatus.OPERATIONAL
    assert change.to_status == ComponentStatus.PARTIAL_OUTAGE
    assert change.cause == StatusChangeCause.STAFF
    assert change.actor == responder
    assert LogEntry.objects.filter(
        user=responder, action_flag=CHANGE, object_id=str(api.pk)
    ).exists()


def test_set_status_action_moves_selected_components(client, responder):
    api, web = ComponentFactory(), ComponentFactory(major_outage=True)
    other = ComponentFactory()

    response = client.post(
        CHANGELIST_URL,
        {
            "action": "set_status",
            "status": ComponentStatus.MAJOR_OUTAGE,
            "_selected_action": [api.pk, web.pk],
            "index": 0,
        },
    )

    assert response.status_code == 302
    statuses = dict(Component.objects.values_list("pk", "status"))
    assert statuses == {
        api.pk: ComponentStatus.MAJOR_OUTAGE,
        web.pk: ComponentStatus.MAJOR_OUTAGE,
        other.pk: ComponentStatus.OPERATIONAL,
    }
    change = ComponentStatusChange.objects.get()  # web already had the status
    assert (change.component, change.cause, change.actor) == (
        api,
        StatusChangeCause.STAFF,
        responder,
    )
    assert LogEntry.objects.filter(user=responder, object_id=str(api.pk)).exists()


def test_set_status_action_without_a_status_changes_nothing(client, responder):
    api = ComponentFactory()

    response = client.post(
        CHANGELIST_URL,
        {"action": "set_status", "status": "", "_selected_action": [api.pk], "index": 0},
        follow=True,
    )

    assert "Choose the status to set." in response.text
    assert not ComponentStatusChange.objects.exists()


def test_change_page_status_goes_through_the_service(client, responder):
    api = ComponentFactory(name="API")
    url = reverse("admin:components_component_change", args=[api.pk])

    response = client.post(
        url,
        form_data(
            name="Public API",
            position=api.position,
            status=ComponentStatus.DEGRADED_PERFORMANCE,
        ),
    )

    assert response.status_code == 302
    api.refresh_from_db()
    assert api.name == "Public API"
    assert api.status == ComponentStatus.DEGRADED_PERFORMANCE
    assert ComponentStatusChange.objects.get().actor == responder


def test_change_page_shows_the_latest_20_status_changes(client, responder):
    api = ComponentFactory()
    for i in range(25):
        status = ComponentStatus.MAJOR_OUTAGE if i % 2 == 0 else ComponentStatus.OPERATIONAL
        component_set_status(component=api, status=status, note=f"change {i}")

    response = client.get(reverse("admin:components_component_change", args=[api.pk]))

    assert response.status_code == 200
    (history,) = response.context["inline_admin_formsets"]
    shown = [form.original.note for form in history]
    assert shown == [f"change {i}" for i in range(24, 4, -1)]


def test_status_history_is_a_read_only_list_filtered_by_cause(client, responder):
    api = ComponentFactory(name="API")
    component_set_status(
        component=api,
        status=ComponentStatus.MAJOR_OUTAGE,
        note="by alert",
        cause=StatusChangeCause.ALERT,
    )
    component_set_status(component=api, status=ComponentStatus.OPERATIONAL, note="by staff")
    url = reverse("admin:components_componentstatuschange_changelist")

    response = client.get(url, {"cause__exact": StatusChangeCause.ALERT})

    assert response.status_code == 200
    assert "by alert" in response.text
    assert "by staff" not in response.text
    assert client.get(reverse("admin:components_componentstatuschange_add")).status_code == 403
    change = ComponentStatusChange.objects.first()
    change_url = reverse("admin:components_componentstatuschange_change", args=[change.pk])
    assert client.post(change_url, {"note": "edited"}).status_code == 403


def test_group_page_lists_its_components(client):
    sign_in_staff(client, StaffFactory(groups=["Admins"]))
    group = ComponentGroupFactory(name="Platform")
    ComponentFactory(name="API", group=group)

    response = client.get(reverse("admin:components_componentgroup_change", args=[group.pk]))

    assert response.status_code == 200
    assert 'value="API"' in response.text


def test_staff_mark_a_component_and_a_group_internal(client):
    sign_in_staff(client, StaffFactory(groups=["Admins"]))
    api = ComponentFactory(name="API")
    response = client.post(
        reverse("admin:components_component_change", args=[api.pk]),
        form_data(name="API", position=api.position, status=api.status, internal="on"),
    )
    assert response.status_code == 302
    api.refresh_from_db()
    assert api.internal and api.is_internal

    response = client.post(
        reverse("admin:components_componentgroup_add"),
        {
            "name": "Backstage",
            "description": "",
            "position": 9,
            "internal": "on",
            "components-TOTAL_FORMS": 0,
            "components-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    group = ComponentGroup.objects.get(name="Backstage")
    assert group.internal
    member = ComponentFactory(name="Cache", group=group)
    assert member.is_internal
    assert set(Component.objects.public()) == set()
    listed = client.get(CHANGELIST_URL + "?internal__exact=1")
    assert "API" in listed.content.decode()

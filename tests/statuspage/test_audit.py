"""The audit trail (statuspage/audit.py): who signed in or failed, who changed what in the
admin or through the management API; read-only for Admins, filterable, exported as CSV."""

import csv
import io
import json
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from components.models import Component
from statuspage import tasks
from statuspage.api_v1.keys import api_key_create
from statuspage.audit import audit_record, audit_two_factor
from statuspage.models import ApiKey, AuditAction, AuditEvent, AuditSource, PageSettings
from tests.components.factories import ComponentFactory
from tests.incidents.factories import StaffFactory, sign_in_staff
from tests.statuspage.test_admin import change_url, settings_data

PASSWORD = "correct horse battery staple"
WRONG = "Tr0ub4dor&3-guess"
CHANGELIST = reverse("admin:statuspage_auditevent_changelist")
EXPORT = reverse("admin:statuspage_auditevent_export")

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.BEACON_TRUSTED_PROXY_HOPS = 0


@pytest.fixture
def admin_user(client):
    user = StaffFactory(username="ada", groups=["Admins"])
    sign_in_staff(client, user)
    AuditEvent.objects.all().delete()  # force_login's own sign-in
    return user


def events(**filters):
    return list(AuditEvent.objects.filter(**filters).order_by("id"))


def export_rows(client, query=""):
    response = client.get(EXPORT + query)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


# Sign-in


def test_a_sign_in_and_a_sign_out_are_recorded_with_the_person_and_address(client):
    user = StaffFactory(username="dana")
    user.set_password(PASSWORD)
    user.save()

    client.post(
        "/admin/login/", {"username": "dana", "password": PASSWORD}, REMOTE_ADDR="192.0.2.8"
    )
    client.post("/admin/logout/", REMOTE_ADDR="192.0.2.8")

    signed_in, signed_out = events(source=AuditSource.SIGN_IN)
    assert (signed_in.action, signed_in.actor, signed_in.ip_address) == (
        AuditAction.SIGNED_IN,
        user,
        "192.0.2.8",
    )
    assert (signed_out.action, signed_out.actor, signed_out.actor_name) == (
        AuditAction.SIGNED_OUT,
        user,
        "dana",
    )


@pytest.mark.parametrize("username", ["dana", "nobody-here", "=cmd|' /C calc'!A0"])
def test_a_failed_sign_in_keeps_the_username_tried_and_never_the_password(client, username):
    user = StaffFactory(username="dana")
    user.set_password(PASSWORD)
    user.save()

    client.post(
        "/admin/login/", {"username": username, "password": WRONG}, REMOTE_ADDR="203.0.113.4"
    )

    [failed] = events(action=AuditAction.SIGN_IN_FAILED)
    assert failed.actor_name == username
    assert failed.actor == (user if username == "dana" else None)
    assert failed.ip_address == "203.0.113.4"
    row = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert WRONG not in row and PASSWORD not in row


# The admin


def test_admin_changes_are_recorded_with_the_changed_field_names_not_values(
    client, admin_user, page
):
    response = client.post(change_url(page), settings_data(), REMOTE_ADDR="198.51.100.3")

    assert response.status_code == 302

    [changed] = events(action=AuditAction.CHANGED)
    assert changed.actor == admin_user
    assert changed.source == AuditSource.ADMIN
    assert (changed.target_type, changed.target_id) == ("statuspage.pagesettings", str(page.pk))
    assert changed.target_repr == "Acme status"
    assert changed.ip_address == "198.51.100.3"
    assert "Name" in changed.detail["fields"] and "Time zone" in changed.detail["fields"]
    assert "Europe/Paris" not in json.dumps(changed.detail)


def test_admin_additions_and_deletions_are_recorded(client, admin_user):
    component = ComponentFactory(name="Search")
    delete = reverse("admin:components_component_delete", args=[component.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 302

    response = client.post(
        reverse("admin:auth_user_add"),
        {
            "username": "newcomer",
            "usable_password": "true",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert response.status_code == 302

    deleted = events(action=AuditAction.DELETED)
    added = events(action=AuditAction.ADDED)
    assert [(e.actor, e.target_type, e.target_repr) for e in deleted] == [
        (admin_user, "components.component", "Search")
    ]
    assert [(e.actor, e.target_type, e.target_repr) for e in added] == [
        (admin_user, "auth.user", "newcomer")
    ]
    assert PASSWORD not in json.dumps([e.detail for e in added])


def test_api_keys_made_and_revoked_in_the_admin_are_recorded(client, admin_user):
    response = client.post(
        reverse("admin:statuspage_apikey_add"),
        {"name": "Terraform", "owner": admin_user.pk, "scope": "read"},
    )
    assert response.status_code == 302
    key = ApiKey.objects.get()

    client.post(
        reverse("admin:statuspage_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [key.pk]},
    )

    created, revoked = events(target_type="statuspage.apikey")
    assert (created.action, created.actor, created.target_id) == (
        AuditAction.API_KEY_CREATED,
        admin_user,
        str(key.pk),
    )
    assert (revoked.action, revoked.actor, revoked.target_id) == (
        AuditAction.API_KEY_REVOKED,
        admin_user,
        str(key.pk),
    )
    # The key itself (shown once, in a message) is nowhere in the trail.
    row = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert key.digest not in row


def test_a_key_made_on_the_command_line_is_recorded(admin_user):
    from django.core.management import call_command

    call_command(
        "create_api_key", user="ada", name="CI", stdout=io.StringIO(), stderr=io.StringIO()
    )

    [created] = events(action=AuditAction.API_KEY_CREATED)
    assert created.source == AuditSource.COMMAND
    assert created.detail == {"owner": "ada"}


# The management API


def test_api_writes_are_recorded_as_the_keys_owner(client, page):
    owner = StaffFactory(username="robot-owner", groups=["Admins"])
    key = api_key_create(owner=owner, name="CI")[1]
    auth = {"HTTP_AUTHORIZATION": f"OAuth {key}", "REMOTE_ADDR": "192.0.2.50"}
    base = f"/api/v1/pages/{page.public_id}"
    component = ComponentFactory(name="API")

    created = client.post(
        f"{base}/incidents",
        json.dumps({"incident": {"name": "API errors", "status": "investigating"}}),
        content_type="application/json",
        **auth,
    )
    assert created.status_code == 201
    incident_id = created.json()["id"]
    client.patch(
        f"{base}/components/{component.public_id}",
        json.dumps({"component": {"status": "major_outage"}}),
        content_type="application/json",
        **auth,
    )
    client.delete(f"{base}/incidents/{incident_id}", **auth)
    client.get(f"{base}/incidents", **auth)  # reads are not recorded
    client.post(f"{base}/incidents", "{", content_type="application/json", **auth)  # a 400

    added, changed, deleted = events(source=AuditSource.API)
    assert (added.action, added.actor, added.target_type, added.target_id) == (
        AuditAction.ADDED,
        owner,
        "incidents",
        incident_id,
    )
    assert added.target_repr == "API errors"
    assert added.detail["fields"] == ["incident.name", "incident.status"]
    assert added.detail["key"].startswith("CI (bk_")
    assert added.ip_address == "192.0.2.50"
    assert (changed.action, changed.target_type, changed.target_id) == (
        AuditAction.CHANGED,
        "components",
        component.public_id,
    )
    assert changed.detail["fields"] == ["component.status"]
    assert (deleted.action, deleted.target_id) == (AuditAction.DELETED, incident_id)
    assert key not in json.dumps([e.detail for e in (added, changed, deleted)])


def test_an_update_posted_through_the_api_names_its_incident(client, page):
    """The view names what it wrote (the trail does not parse a long incident's answer)."""
    from tests.incidents.factories import open_incident

    owner = StaffFactory(username="robot-owner", groups=["Admins"])
    key = api_key_create(owner=owner, name="CI")[1]
    incident = open_incident(name="Checkout errors")
    for n in range(3):
        answer = client.patch(
            f"/api/v1/pages/{page.public_id}/incidents/{incident.public_id}",
            json.dumps({"incident": {"status": "identified", "body": f"Update {n}."}}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"OAuth {key}",
        )
        assert answer.status_code == 200
    changed = events(source=AuditSource.API)
    assert [(e.actor, e.target_id, e.target_repr) for e in changed] == [
        (owner, incident.public_id, "Checkout errors")
    ] * 3


@pytest.fixture
def leaving_owners_key(monkeypatch) -> str:
    """A key whose owner ("leaving", a superuser: no groups after a flush) is deleted while
    a request made with it runs, after the key was checked."""
    from statuspage.api_v1 import base as api_base

    owner = StaffFactory(username="leaving", is_superuser=True)
    owner_of = api_base.key_owner_of

    def deleted_meanwhile(record):
        User.objects.filter(pk=record.owner_pk).delete()
        return owner_of(record)

    monkeypatch.setattr(api_base, "key_owner_of", deleted_meanwhile)
    return api_key_create(owner=owner, name="CI")[1]


@pytest.mark.django_db(transaction=True)  # the trail's row is written in autocommit
def test_an_api_write_whose_key_owner_is_deleted_meanwhile_is_still_recorded(
    client, page, leaving_owners_key
):
    """The owner comes from the key's cached record, not read: deleted during the request,
    the write is recorded under their name, without the row that is gone."""
    component = ComponentFactory(name="API")
    answer = client.patch(
        f"/api/v1/pages/{page.public_id}/components/{component.public_id}",
        json.dumps({"component": {"description": "Public API"}}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"OAuth {leaving_owners_key}",
    )
    assert answer.status_code == 200
    [changed] = events(source=AuditSource.API)
    assert (changed.actor, changed.actor_name, changed.target_id) == (
        None,
        "leaving",
        component.public_id,
    )


def test_an_api_write_names_the_key_as_it_is_now(client, page):
    """The key's name comes with its cached record, and renaming the key forgets that."""
    owner = StaffFactory(username="robot-owner", groups=["Admins"])
    row, key = api_key_create(owner=owner, name="CI")
    auth = {"HTTP_AUTHORIZATION": f"OAuth {key}"}
    path = f"/api/v1/pages/{page.public_id}/components/{ComponentFactory(name='API').public_id}"

    def patch(status: str) -> None:
        body = json.dumps({"component": {"status": status}})
        assert client.patch(path, body, content_type="application/json", **auth).status_code == 200

    patch("major_outage")
    row.name = "Deploy bot"
    row.save()
    patch("operational")
    first, renamed = events(source=AuditSource.API)
    assert first.detail["key"].startswith("CI (bk_")
    assert renamed.detail["key"].startswith("Deploy bot (bk_")
    assert renamed.actor == owner and renamed.actor_name == "robot-owner"


def test_a_write_the_key_may_not_make_is_not_recorded(client, page):
    owner = StaffFactory(groups=["Responders"])
    key = api_key_create(owner=owner, name="CI")[1]

    response = client.delete(
        f"/api/v1/pages/{page.public_id}/components/{ComponentFactory().public_id}",
        HTTP_AUTHORIZATION=f"OAuth {key}",
    )

    assert response.status_code == 403
    assert not AuditEvent.objects.exists()


# Kept


def test_events_outlive_the_person_who_made_them(client, admin_user):
    audit_record(actor=admin_user, action=AuditAction.CHANGED, target=ComponentFactory())
    admin_user.delete()

    [event] = events()
    assert event.actor is None
    assert event.actor_name == "ada"


def test_events_older_than_the_retention_are_pruned_by_the_beat_task(settings):
    settings.BEACON_AUDIT_RETENTION_DAYS = 30
    now = timezone.now()
    for days in (400, 31, 29, 0):
        AuditEvent.objects.create(
            at=now - timedelta(days=days),
            actor_name=f"{days}-days",
            action=AuditAction.SIGNED_IN,
            source=AuditSource.SIGN_IN,
        )

    tasks.prune_audit_events()

    assert sorted(AuditEvent.objects.values_list("actor_name", flat=True)) == [
        "0-days",
        "29-days",
    ]


def test_a_retention_of_zero_keeps_every_event(settings):
    settings.BEACON_AUDIT_RETENTION_DAYS = 0
    AuditEvent.objects.create(
        at=timezone.now() - timedelta(days=5000),
        action=AuditAction.SIGNED_IN,
        source=AuditSource.SIGN_IN,
    )

    tasks.prune_audit_events()

    assert AuditEvent.objects.count() == 1


# The second sign-in step's hook


def test_two_factor_events_are_recorded_through_their_hook(rf):
    user = StaffFactory(username="dana")
    request = rf.post("/admin/login/", REMOTE_ADDR="192.0.2.9")

    class TOTPDevice:  # what django-otp hands the 2FA views: a device with a name
        name = "Phone"
        key = "secret-seed"

    audit_two_factor(
        request=request, user=user, action=AuditAction.TWO_FACTOR_FAILED, device=TOTPDevice()
    )

    [event] = events()
    assert (event.action, event.actor, event.ip_address) == (
        AuditAction.TWO_FACTOR_FAILED,
        user,
        "192.0.2.9",
    )
    assert event.detail == {"device": "TOTPDevice", "name": "Phone"}


# Reading it in the admin


def test_admins_read_the_trail_but_cannot_add_change_or_delete(client, admin_user):
    event = audit_record(actor=admin_user, action=AuditAction.SIGNED_IN)

    assert client.get(CHANGELIST).status_code == 200
    assert (
        client.get(reverse("admin:statuspage_auditevent_change", args=[event.pk])).status_code
        == 200
    )
    assert client.get(reverse("admin:statuspage_auditevent_add")).status_code == 403
    delete = reverse("admin:statuspage_auditevent_delete", args=[event.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    change = reverse("admin:statuspage_auditevent_change", args=[event.pk])
    client.post(change, {"actor_name": "someone-else"})
    event.refresh_from_db()
    assert event.actor_name == "ada"
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.parametrize("url", [CHANGELIST, EXPORT])
def test_responders_cannot_read_the_trail(client, url):
    sign_in_staff(client, StaffFactory(groups=["Responders"]))

    assert client.get(url).status_code == 403


def test_staff_without_a_role_cannot_read_the_trail(client):
    sign_in_staff(client, StaffFactory())

    assert client.get(CHANGELIST).status_code == 403
    assert client.get(EXPORT).status_code == 403


def test_superusers_read_the_trail(client):
    sign_in_staff(client, User.objects.create_superuser("root", password=PASSWORD))

    assert client.get(CHANGELIST).status_code == 200


def test_the_list_filters_by_action_actor_and_date(client, admin_user):
    old = audit_record(actor=None, actor_name="eve", action=AuditAction.SIGN_IN_FAILED)
    AuditEvent.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(days=40))
    audit_record(actor=admin_user, action=AuditAction.SIGNED_IN)
    audit_record(actor=None, actor_name="eve", action=AuditAction.SIGN_IN_FAILED)

    def shown(query):
        response = client.get(CHANGELIST + query)
        assert response.status_code == 200
        return [(e.actor_name, e.action) for e in response.context["cl"].result_list]

    assert shown("?action=sign_in_failed") == [("eve", "sign_in_failed")] * 2
    assert shown("?actor=ada") == [("ada", "signed_in")]
    week = urlencode({"at__gte": (timezone.now() - timedelta(days=7)).isoformat()})
    assert shown(f"?{week}") == [
        ("eve", "sign_in_failed"),
        ("ada", "signed_in"),
    ]
    assert shown("?q=eve") == [("eve", "sign_in_failed")] * 2


def test_the_export_is_the_filtered_list_as_csv(client, admin_user):
    audit_record(actor=admin_user, action=AuditAction.SIGNED_IN)
    audit_record(
        actor=admin_user,
        action=AuditAction.CHANGED,
        target=ComponentFactory(name="Search"),
        detail={"fields": ["Name"]},
    )

    everything = export_rows(client)
    changes = export_rows(client, "?action=changed")

    assert everything[0][:3] == ["time", "username", "action"]
    assert len(everything) == 3
    [header, row] = changes
    assert row[1:7] == ["ada", "changed", "admin", "components.component", row[5], "Search"]
    assert json.loads(row[8]) == {"fields": ["Name"]}


@pytest.mark.parametrize(
    "hostile", ['=HYPERLINK("http://evil.test")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
)
def test_the_export_keeps_spreadsheet_formulas_inert(client, admin_user, hostile):
    audit_record(
        actor=None,
        actor_name=hostile,
        action=AuditAction.SIGN_IN_FAILED,
        target_repr=hostile,
    )

    [_, row] = export_rows(client)

    assert row[1] == "'" + hostile
    assert row[6] == "'" + hostile


def test_the_export_link_keeps_the_filters_on_screen(client, admin_user):
    audit_record(actor=admin_user, action=AuditAction.SIGNED_IN)

    response = client.get(CHANGELIST + "?action=signed_in")

    assert f'href="{EXPORT}?action=signed_in"'.encode() in response.content


def test_page_settings_saved_outside_the_admin_are_not_an_admin_event():
    # Domain code records nothing: only the admin, the API and sign-in feed the trail.
    page = PageSettings.load()
    page.name = "Renamed"
    page.save()
    Component.objects.create(name="Quiet", position=1)

    assert not AuditEvent.objects.exists()


@pytest.mark.django_db(transaction=True)  # the author's key is checked at the commit
@pytest.mark.parametrize("write", ["incident update", "component status"])
def test_a_write_naming_a_key_owner_deleted_meanwhile_answers_401_and_writes_nothing(
    client, page, leaving_owners_key, write
):
    from incidents.models import IncidentUpdate
    from tests.incidents.factories import open_incident

    component = ComponentFactory(name="API")
    incident = open_incident(name="Errors")
    if write == "incident update":
        path = f"incidents/{incident.public_id}"
        body = {"incident": {"status": "identified", "body": "Found it."}}
    else:
        path = f"components/{component.public_id}"
        body = {"component": {"status": "major_outage"}}
    answer = client.patch(
        f"/api/v1/pages/{page.public_id}/{path}",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"OAuth {leaving_owners_key}",
    )
    assert (answer.status_code, answer.json()["error"]) == (
        401,
        "This API key's owner no longer exists.",
    )
    assert IncidentUpdate.objects.filter(incident=incident).count() == 1
    assert Component.objects.get(pk=component.pk).status == "operational"

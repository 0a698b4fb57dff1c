"""API keys in the admin: scope and expiry chosen when a key is made, expired and soon-expiring
keys marked in the list, and a warning for staff whose own key is about to stop."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.utils import timezone

from statuspage.api_v1.keys import api_key_create, api_key_revoke
from statuspage.models import ApiKey
from tests.incidents.factories import StaffFactory, sign_in_staff

pytestmark = pytest.mark.django_db

ADD = "/admin/statuspage/apikey/add/"
LIST = "/admin/statuspage/apikey/"
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def superuser(client, page):
    user = get_user_model().objects.create_superuser("root", "r@example.test", "pw")
    sign_in_staff(client, user)
    return user


@pytest.fixture
def staff(client, page):
    user = StaffFactory(groups=["Responders"])
    sign_in_staff(client, user)
    return user


def raw_key_in(response) -> str:
    match = re.search(r"is (bk_[\w-]+) ", response.content.decode())
    return match.group(1) if match else ""


def test_the_add_form_offers_scopes_read_first_and_an_optional_expiry(client, staff):
    form = client.get(ADD).content.decode()
    assert re.search(r'<input[^>]*name="scope"[^>]*value="read"[^>]*checked', form)
    assert not re.search(r'<input[^>]*name="scope"[^>]*value="write"[^>]*checked', form)
    assert 'name="expires_at_0"' in form and 'name="expires_at_1"' in form  # date, time
    assert "never expires" in form and "Time in UTC" in form


def test_staff_make_a_read_only_key_that_expires(client, staff, settings):
    settings.TIME_ZONE = "Europe/Paris"
    with time_machine.travel(NOW, tick=False):
        response = client.post(
            ADD,
            {
                "name": "Dashboard",
                "owner": staff.pk,
                "scope": "read",
                "expires_at_0": "2026-04-01",
                "expires_at_1": "18:00",
            },
            follow=True,
        )
    key = ApiKey.objects.get()
    raw = raw_key_in(response)
    assert raw.startswith(key.prefix)
    assert key.scope == "read"
    assert key.expires_at == datetime.fromisoformat("2026-04-01T18:00+02:00")
    page_path = "/api/v1/pages"
    with time_machine.travel(NOW, tick=False):
        assert client.get(page_path, HTTP_AUTHORIZATION=f"OAuth {raw}").status_code == 200
        incidents = "/api/v1/pages/x/incidents"
        assert client.post(incidents, HTTP_AUTHORIZATION=f"OAuth {raw}").status_code == 403
    with time_machine.travel(key.expires_at, tick=False):
        assert client.get(page_path, HTTP_AUTHORIZATION=f"OAuth {raw}").status_code == 401


def test_a_key_made_without_an_expiry_never_expires(client, staff):
    client.post(ADD, {"name": "CI", "owner": staff.pk, "scope": "write"})
    key = ApiKey.objects.get()
    assert key.scope == "write" and key.expires_at is None


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (
            {"scope": "read", "expires_at_0": "2026-03-02", "expires_at_1": "04:29"},
            "expires_at",
        ),  # 09:29 UTC
        ({"scope": "read", "expires_at_0": "2020-01-01", "expires_at_1": "00:00"}, "expires_at"),
        ({"scope": "read", "expires_at_0": "2026-13-45", "expires_at_1": "25:00"}, "expires_at"),
        ({"scope": "read", "expires_at_0": "9999-12-31", "expires_at_1": "23:59"}, "expires_at"),
        ({"scope": "read", "expires_at_0": "2126-01-01", "expires_at_1": "00:00"}, None),
        ({"scope": "admin"}, "scope"),
        ({}, "scope"),
    ],
    ids=["a minute ago", "years ago", "no such date", "end of time", "in 100 years", "bad", "none"],
)
def test_a_bad_scope_or_expiry_is_a_form_error_not_a_key(client, staff, settings, data, field):
    settings.TIME_ZONE = "America/New_York"  # behind UTC: the calendar's last day overflows
    with time_machine.travel(NOW, tick=False):
        response = client.post(ADD, {"name": "CI", "owner": staff.pk, **data})
    if field is None:  # far, but within a hundred years: accepted
        assert response.status_code == 302
        return
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not ApiKey.objects.exists()


def test_scope_and_expiry_cannot_be_changed_afterwards(client, superuser):
    key, _ = api_key_create(
        owner=superuser, name="Reader", scope="read", expires_at=timezone.now() + timedelta(days=1)
    )
    before = ApiKey.objects.filter(pk=key.pk).values().get()
    response = client.post(
        f"/admin/statuspage/apikey/{key.pk}/change/",
        {"name": "Writer", "scope": "write", "expires_at_0": "", "expires_at_1": ""},
    )
    assert response.status_code in (200, 302)
    assert ApiKey.objects.filter(pk=key.pk).values().get() == before
    page = client.get(f"/admin/statuspage/apikey/{key.pk}/change/").content.decode()
    assert 'name="scope"' not in page and 'name="expires_at_0"' not in page
    assert "Read only" in page


def test_the_list_shows_scope_state_expiry_and_last_use(client, superuser):
    with time_machine.travel(NOW, tick=False):
        for name, scope, expires in [
            ("Forever", "write", None),
            ("Soon", "read", NOW + timedelta(days=3)),
            ("Later", "read", NOW + timedelta(days=30)),
            ("Gone", "write", NOW + timedelta(hours=1)),
        ]:
            api_key_create(owner=superuser, name=name, scope=scope, expires_at=expires)
        revoked, _ = api_key_create(owner=superuser, name="Revoked")
        api_key_revoke(key=revoked)
        ApiKey.objects.filter(name="Forever").update(last_used_at=NOW - timedelta(hours=5))
    with time_machine.travel(NOW + timedelta(hours=2), tick=False):
        rows = {
            name: row
            for row in re.findall(r"<tr>.*?</tr>", client.get(LIST).content.decode(), re.S)
            for name in ("Forever", "Soon", "Later", "Gone", "Revoked")
            if f">{name}<" in row
        }
    assert "Read and write" in rows["Forever"] and "Never" in rows["Forever"]
    assert "March 2, 2026, 4:30 a.m." in rows["Forever"]  # last used
    assert "Read only" in rows["Soon"] and "icon-alert" in rows["Soon"]
    assert "<strong>Expires in 2\xa0days, 22\xa0hours</strong>" in rows["Soon"]
    assert "Active" in rows["Later"] and "icon-alert" not in rows["Later"]
    assert "icon-no" in rows["Gone"] and "<strong>Expired</strong>" in rows["Gone"]
    assert (
        '<time datetime="2026-03-02T10:30:00+00:00">March 2, 2026, 10:30 a.m.</time>'
        in rows["Gone"]
    )
    assert "Revoked" in rows["Revoked"] and "Expired" not in rows["Revoked"]


def test_a_deactivated_owners_key_is_shown_stopped(client, superuser):
    leaver = StaffFactory(is_active=False)
    api_key_create(owner=leaver, name="Leaver's")
    assert "its owner is deactivated" in client.get(LIST).content.decode()


@pytest.mark.parametrize(
    ("state", "shown"),
    [
        ("unexpired", {"Forever", "Soon", "Later"}),
        ("expiring", {"Soon"}),
        ("expired", {"Gone"}),
        ("revoked", {"Revoked"}),
    ],
)
def test_the_list_filters_by_state(client, superuser, state, shown):
    with time_machine.travel(NOW, tick=False):
        for name, expires in [
            ("Forever", None),
            ("Soon", NOW + timedelta(days=7)),
            ("Later", NOW + timedelta(days=7, seconds=2)),  # a second past the week
            ("Gone", NOW + timedelta(seconds=1)),
            ("Revoked", NOW + timedelta(seconds=1)),
        ]:
            api_key_create(owner=superuser, name=name, expires_at=expires)
        api_key_revoke(key=ApiKey.objects.get(name="Revoked"))
        api_key_create(owner=StaffFactory(is_active=False), name="Leaver's")
    with time_machine.travel(NOW + timedelta(seconds=1), tick=False):
        response = client.get(LIST, {"state": state})
    assert {key.name for key in response.context["cl"].result_list} == shown


def test_staff_are_warned_when_their_own_key_expires_within_a_week(client, staff):
    colleague = StaffFactory(groups=["Responders"])
    with time_machine.travel(NOW, tick=False):
        api_key_create(owner=staff, name="Deploys", expires_at=NOW + timedelta(days=6))
        api_key_create(owner=staff, name="Nightly", expires_at=NOW + timedelta(days=8))
        api_key_create(owner=staff, name="Old", expires_at=NOW + timedelta(minutes=1))
        revoked, _ = api_key_create(owner=staff, name="Dropped", expires_at=NOW + timedelta(days=1))
        api_key_revoke(key=revoked)
        api_key_create(owner=colleague, name="Theirs", expires_at=NOW + timedelta(days=1))
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        response = client.get(LIST)
    warnings = [str(m) for m in response.context["messages"]]
    assert len(warnings) == 1
    assert "“Deploys”" in warnings[0] and "expires in 5\xa0days, 23\xa0hours" in warnings[0]
    assert "Deploys" in response.content.decode().split('class="messagelist"', 1)[1]


def test_revoking_still_works_on_expired_and_live_keys(client, staff):
    with time_machine.travel(NOW, tick=False):
        gone, _ = api_key_create(owner=staff, name="Gone", expires_at=NOW + timedelta(hours=1))
        live, _ = api_key_create(owner=staff, name="Live", scope="read")
    with time_machine.travel(NOW + timedelta(hours=2), tick=False):
        response = client.post(
            LIST, {"action": "revoke_selected", "_selected_action": [gone.pk, live.pk]}
        )
    assert response.status_code == 302
    assert ApiKey.objects.filter(revoked_at__isnull=True).count() == 0

"""Management API v1: keys, authentication, the rate limit, bodies and error shapes."""

import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from statuspage.api_v1.keys import api_key_create, api_key_revoke
from statuspage.models import ApiKey, PageSettings
from tests.incidents.factories import StaffFactory, sign_in_staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_key(page):
    owner = StaffFactory(groups=["Admins"])
    return api_key_create(owner=owner, name="CI")[1]


def get(client, path, key=None, scheme="OAuth", **extra):
    headers = {"HTTP_AUTHORIZATION": f"{scheme} {key}"} if key else {}
    return client.get(path, **headers, **extra)


def test_a_key_is_kept_only_as_its_hash(page):
    key, raw = api_key_create(owner=StaffFactory(), name="Terraform")
    stored = ApiKey.objects.get()
    assert raw.startswith("bk_") and len(raw) > 40
    assert raw not in (stored.digest, stored.prefix) and stored.prefix == raw[:10]


@pytest.mark.parametrize("scheme", ["OAuth", "Bearer"])
def test_statuspage_clients_authenticate_with_the_authorization_header(client, admin_key, scheme):
    response = get(client, "/api/v1/pages", admin_key, scheme=scheme)
    assert response.status_code == 200
    assert response.json()[0]["id"] == PageSettings.load().public_id


def test_the_key_may_also_come_as_a_query_parameter(client, admin_key):
    assert client.get(f"/api/v1/pages?api_key={admin_key}").status_code == 200


@pytest.mark.parametrize("key", [None, "bk_wrong", "x" * 500])
def test_without_a_valid_key_the_answer_is_401_with_both_error_keys(client, page, key):
    response = get(client, "/api/v1/pages", key)
    assert response.status_code == 401
    assert response.json() == {
        "error": "Could not authenticate",
        "message": "Could not authenticate",
    }


def test_a_revoked_key_stops_working_and_use_is_noted(client, admin_key):
    assert get(client, "/api/v1/pages", admin_key).status_code == 200
    key = ApiKey.objects.get()
    assert key.last_used_at is not None
    api_key_revoke(key=key)
    assert get(client, "/api/v1/pages", admin_key).status_code == 401


def test_a_deactivated_owners_keys_stop_working(client, page):
    owner = StaffFactory(groups=["Admins"])
    raw = api_key_create(owner=owner, name="Leaver")[1]
    owner.is_active = False
    owner.save()
    assert get(client, "/api/v1/pages", raw).status_code == 401


def test_a_key_acts_with_its_owners_permissions(client, page):
    raw = api_key_create(owner=StaffFactory(), name="No role")[1]
    response = get(client, "/api/v1/pages", raw)
    assert response.status_code == 403
    assert "may not" in response.json()["message"]


def test_paths_with_a_json_suffix_work_too(client, admin_key):
    page_id = PageSettings.load().public_id
    response = get(client, f"/api/v1/pages/{page_id}.json", admin_key)
    assert response.status_code == 200
    assert response.json()["id"] == page_id


def test_nul_characters_are_a_400_not_a_database_error(client, admin_key):
    page_id = PageSettings.load().public_id
    in_path = get(client, f"/api/v1/pages/{page_id}/components/a%00b", admin_key)
    in_query = get(client, f"/api/v1/pages/{page_id}/incidents?q=a%00b", admin_key)
    in_body = client.patch(
        f"/api/v1/pages/{page_id}",
        '{"page": {"name": "Bad\\u0000name"}}',
        content_type="application/json",
        HTTP_AUTHORIZATION=f"OAuth {admin_key}",
    )
    for response in (in_path, in_query, in_body):
        assert response.status_code == 400, response.content
        assert "NUL" in response.json()["error"]
    assert PageSettings.load().name != "Bad\x00name"


def test_an_endpoint_beacon_has_not_got_is_a_json_404(client, admin_key):
    page_id = PageSettings.load().public_id
    response = get(client, f"/api/v1/pages/{page_id}/incident_templates", admin_key)
    assert response.status_code == 404
    assert "incident_templates" in response.json()["error"]


def test_an_unknown_page_is_404(client, admin_key):
    response = get(client, "/api/v1/pages/nope", admin_key)
    assert response.status_code == 404
    assert set(response.json()) == {"error", "message"}


def test_each_key_is_rate_limited_with_retry_after(client, admin_key, settings):
    settings.BEACON_API_RATE_LIMIT_PER_MINUTE = 2
    codes = [get(client, "/api/v1/pages", admin_key).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    response = get(client, "/api/v1/pages", admin_key)
    assert int(response["Retry-After"]) >= 1
    assert "Rate limit" in response.json()["error"]


def test_bad_json_is_400_and_changes_nothing(client, admin_key):
    page_id = PageSettings.load().public_id
    response = client.patch(
        f"/api/v1/pages/{page_id}",
        data="{not json",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"OAuth {admin_key}",
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["message"]  # and where: "line 1 column 2"


def test_a_wrong_type_is_400_and_a_bad_value_422(client, admin_key):
    page_id = PageSettings.load().public_id
    auth = {"HTTP_AUTHORIZATION": f"OAuth {admin_key}"}
    wrong_type = client.patch(
        f"/api/v1/pages/{page_id}",
        data=json.dumps({"page": {"allow_email_subscribers": {"a": 1}}}),
        content_type="application/json",
        **auth,
    )
    assert wrong_type.status_code == 400
    assert "allow_email_subscribers" in wrong_type.json()["message"]
    bad_zone = client.patch(
        f"/api/v1/pages/{page_id}",
        data=json.dumps({"page": {"time_zone": "Mars/Olympus"}}),
        content_type="application/json",
        **auth,
    )
    assert bad_zone.status_code == 422
    assert PageSettings.load().time_zone == "UTC"


def test_form_encoded_bodies_with_rails_brackets_are_understood(client, admin_key):
    page_id = PageSettings.load().public_id
    response = client.patch(
        f"/api/v1/pages/{page_id}",
        data="page[name]=Acme+Cloud",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"OAuth {admin_key}",
    )
    assert response.status_code == 200, response.content
    assert PageSettings.load().name == "Acme Cloud"


def test_the_openapi_document_and_docs_are_served(client, page):
    document = client.get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert "/api/v1/pages/{page_id}" in document["paths"]
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower()


def test_create_api_key_prints_the_key_once(page):
    user = StaffFactory(username="deploybot")
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "create_api_key", "--user", "deploybot", "--name", "Deploys", stdout=out, stderr=err
    )
    raw = out.getvalue().strip()
    key = ApiKey.objects.get()
    assert key.owner == user and key.name == "Deploys" and raw.startswith(key.prefix)
    assert "not shown again" in err.getvalue()


def test_staff_make_a_key_in_the_admin_and_see_it_once(client, page):
    from django.contrib.auth import get_user_model

    admin_user = get_user_model().objects.create_superuser("root", "r@example.test", "pw")
    sign_in_staff(client, admin_user)
    response = client.post(
        "/admin/statuspage/apikey/add/",
        {"name": "Terraform", "owner": admin_user.pk, "scope": "write"},
        follow=True,
    )
    text = response.content.decode()
    key = ApiKey.objects.get()
    raw = text.split("is ", 1)[1].split(" ", 1)[0] if "is bk_" in text else ""
    assert raw.startswith("bk_") and raw.startswith(key.prefix)
    assert get(client, "/api/v1/pages", raw).status_code == 200
    assert client.get(f"/admin/statuspage/apikey/{key.pk}/change/").content.decode().count(raw) == 0
    assert key.created_at <= timezone.now()


def test_staff_make_keys_only_for_themselves(client, page):
    from django.contrib.auth import get_user_model

    boss = get_user_model().objects.create_superuser("root", "r@example.test", "pw")
    api_key_create(owner=boss, name="Root's key")
    responder = StaffFactory(groups=["Responders"])
    sign_in_staff(client, responder)

    add = "/admin/statuspage/apikey/add/"
    as_boss = client.post(add, {"name": "Mine", "owner": boss.pk, "scope": "read"})
    assert as_boss.status_code == 200 and "owner" in as_boss.context["adminform"].form.errors
    mine = client.post(add, {"name": "Mine", "owner": responder.pk, "scope": "read"})
    assert mine.status_code == 302

    listed = client.get("/admin/statuspage/apikey/").content.decode()
    assert "Mine" in listed and "Root&#x27;s key" not in listed and "Root's key" not in listed
    assert ApiKey.objects.filter(owner=responder).count() == 1


def test_create_api_key_makes_read_only_and_expiring_keys_on_request(page):
    StaffFactory(username="dashboard")
    out, err = io.StringIO(), io.StringIO()
    before = timezone.now()
    call_command(
        "create_api_key",
        *("--user", "dashboard", "--scope", "read", "--expires-in-days", "30"),
        stdout=out,
        stderr=err,
    )
    key = ApiKey.objects.get()
    assert key.scope == "read" and out.getvalue().strip().startswith(key.prefix)
    assert before + timedelta(days=30) <= key.expires_at <= timezone.now() + timedelta(days=30)
    assert "read only, expiring" in err.getvalue()


@pytest.mark.parametrize(
    "arguments",
    [
        ("--scope", "admin"),
        ("--scope", ""),
        ("--expires-in-days", "0"),
        ("--expires-in-days", "-3"),
        ("--expires-in-days", "1.5"),
        ("--expires-in-days", "36501"),
        ("--expires-in-days", "99999999999999"),
    ],
)
def test_create_api_key_refuses_a_bad_scope_or_expiry(page, arguments):
    StaffFactory(username="dashboard")
    with pytest.raises(CommandError, match="--scope|--expires-in-days"):
        call_command("create_api_key", "--user", "dashboard", *arguments)
    assert not ApiKey.objects.exists()

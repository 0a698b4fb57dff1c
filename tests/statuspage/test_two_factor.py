"""Staff sign-in: the password, then a second factor, before any admin view runs."""

import re
from base64 import b32encode, urlsafe_b64encode
from datetime import timedelta

import pytest
import time_machine
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential

from components.models import Component, ComponentStatus
from incidents.models import Incident, IncidentDraft, IncidentStatus, IncidentUpdate
from statuspage.models import ApiKey, AuditAction, AuditEvent
from tests.components.factories import ComponentFactory
from tests.incidents.factories import StaffFactory, open_incident, sign_in_staff

pytestmark = pytest.mark.django_db

PASSWORD = "a long staff passphrase 42"
LOGIN = reverse("admin:login")
SECOND_STEP = reverse("admin:two_factor")
SET_UP = reverse("admin:two_factor_set_up")
MANAGE = reverse("admin:two_factor_manage")


def staff(**kwargs):
    user = StaffFactory(groups=["Admins"], **kwargs)
    user.set_password(PASSWORD)
    user.save()
    return user


def with_app(user):
    return TOTPDevice.objects.create(user=user, name="Phone")


def code_of(device):
    """What the authenticator app shows now (the clock may be moved by time_machine)."""
    value = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    return f"{value:0{device.digits}d}"


@pytest.fixture
def password_only(client):
    """A staff member with an authenticator app, past the password step only."""
    user = staff()
    device = with_app(user)
    password_step(client, user)
    return user, device


def password_step(client, user, next_url="/admin/"):
    return client.post(LOGIN, {"username": user.username, "password": PASSWORD, "next": next_url})


def second_step(client, device, code, next_url="/admin/"):
    return client.post(
        f"{SECOND_STEP}?next={next_url}",
        {"device": device.persistent_id, "code": code, "next": next_url},
    )


def goes_to_second_step(response):
    return response.status_code == 302 and response["Location"].startswith(SECOND_STEP)


# The second step --------------------------------------------------------------------------


def test_the_right_password_leads_to_the_second_step_not_the_admin(client):
    user = staff()
    with_app(user)

    response = password_step(client, user, next_url="/admin/incidents/incident/")

    assert goes_to_second_step(response)
    assert "next=%2Fadmin%2Fincidents%2Fincident%2F" in response["Location"]
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert "Phone" in page.text and 'name="code"' in page.text
    # Nothing of the admin shows on the half-signed-in page.
    assert "Incidents" not in page.text
    assert goes_to_second_step(client.get("/admin/"))


def test_a_code_from_the_app_lets_staff_into_the_admin(client, password_only):
    user, device = password_only

    response = second_step(client, device, code_of(device), next_url="/admin/incidents/incident/")

    assert response.status_code == 302
    assert response["Location"] == "/admin/incidents/incident/"
    assert client.get("/admin/incidents/incident/").status_code == 200
    assert client.get("/admin/").status_code == 200


@pytest.mark.parametrize("code", ["000000", "12345", "abcdef", "9" * 32, " ", "123456789012"])
def test_a_wrong_code_is_a_form_error_and_lets_nobody_in(client, code, password_only):
    user, device = password_only
    if code == "000000" and code_of(device) == code:
        code = "000001"

    response = second_step(client, device, code)

    assert response.status_code == 200
    assert 'class="errornote"' in response.text or "errorlist" in response.text
    assert goes_to_second_step(client.get("/admin/"))


def test_wrong_codes_make_the_next_try_wait_and_say_so(client, password_only):
    user, device = password_only
    wrong = "000000" if code_of(device) != "000000" else "111111"

    with time_machine.travel(timezone.now(), tick=False) as traveller:
        first = second_step(client, device, wrong)
        right_too_soon = second_step(client, device, code_of(device))
        traveller.shift(2)
        right_after_waiting = second_step(client, device, code_of(device))

    assert "That code is not right" in first.text
    assert right_too_soon.status_code == 200
    assert "Too many wrong codes (1): wait" in right_too_soon.text
    assert right_after_waiting.status_code == 302
    device.refresh_from_db()
    assert device.throttling_failure_count == 0


def test_a_code_cannot_be_used_twice(client):
    user = staff()
    device = with_app(user)
    with time_machine.travel(timezone.now(), tick=False):
        code = code_of(device)
        password_step(client, user)
        assert second_step(client, device, code).status_code == 302
        client.post(reverse("admin:logout"))

        password_step(client, user)
        replayed = second_step(client, device, code)

    assert replayed.status_code == 200
    assert "used already" in replayed.text
    assert goes_to_second_step(client.get("/admin/"))


def test_a_code_from_the_previous_step_still_works_but_not_an_older_one(client):
    user = staff()
    device = with_app(user)
    now = (timezone.now().timestamp() // 30) * 30 + 10  # 10 s into a 30 s step
    with time_machine.travel(now - 60, tick=False):
        old_code = code_of(device)
    with time_machine.travel(now - 30, tick=False):
        previous_code = code_of(device)
    with time_machine.travel(now, tick=False) as traveller:
        password_step(client, user)
        assert old_code != code_of(device) != previous_code
        assert second_step(client, device, old_code).status_code == 200
        traveller.shift(2)  # past the wait the wrong code earned
        assert second_step(client, device, previous_code).status_code == 302


def test_backup_codes_work_once_each(client):
    user = staff()
    with_app(user)
    backup = StaticDevice.objects.create(user=user, name="Backup codes")
    backup.token_set.create(token="k7m2p9q4rs")
    backup.token_set.create(token="x8y3z2w9vt")

    password_step(client, user)
    assert second_step(client, backup, "K7M2 P9Q4 RS").status_code == 302
    client.post(reverse("admin:logout"))
    password_step(client, user)
    reused = second_step(client, backup, "k7m2p9q4rs")

    assert reused.status_code == 200
    assert "used already" in reused.text
    assert list(StaticToken.objects.values_list("token", flat=True)) == ["x8y3z2w9vt"]


def test_a_code_of_another_users_device_is_refused(client):
    user = staff()
    with_app(user)
    other_device = with_app(staff())
    password_step(client, user)

    response = second_step(client, other_device, code_of(other_device))

    assert response.status_code == 200
    assert goes_to_second_step(client.get("/admin/"))


def test_the_second_step_never_redirects_off_site(client, password_only):
    user, device = password_only

    response = second_step(client, device, code_of(device), next_url="https://evil.test/")

    assert response["Location"] == "/admin/"


def test_signing_out_works_half_signed_in(client):
    user = staff()
    with_app(user)
    password_step(client, user)

    response = client.post(reverse("admin:logout"))

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert client.get(SECOND_STEP).status_code == 302  # to the login page now
    assert client.get(SECOND_STEP)["Location"].startswith(LOGIN)


# Half signed in: every admin view refuses, GET and POST -------------------------------------


@pytest.fixture
def half_signed_in(client):
    user = staff(is_superuser=True)
    with_app(user)
    password_step(client, user)
    return user


def admin_urls():
    return [
        "/admin/",
        "/admin/incidents/incident/",
        "/admin/incidents/incident/add/",
        "/admin/components/component/",
        "/admin/statuspage/apikey/add/",
        "/admin/statuspage/pagesettings/",
        "/admin/auth/user/",
        "/admin/password_change/",
        "/admin/autocomplete/?app_label=auth&model_name=user&field_name=owner",
        "/admin/jsi18n/",
        MANAGE,
        reverse("admin:two_factor_backup_codes"),
    ]


@pytest.mark.parametrize("url", admin_urls())
def test_half_signed_in_gets_of_admin_pages_go_to_the_second_step(client, half_signed_in, url):
    response = client.get(url)

    assert goes_to_second_step(response), (url, response.status_code)


def test_half_signed_in_posts_change_nothing(client, half_signed_in):
    component = ComponentFactory(name="API")
    incident = open_incident(name="Outage")
    draft = IncidentDraft.objects.create(
        component=component, name="API down", component_status=ComponentStatus.MAJOR_OUTAGE
    )
    victim = staff()
    client.get(SECOND_STEP)  # sets the CSRF cookie, as a browser would have it
    csrf = client.cookies["csrftoken"].value
    attempts = [
        ("/admin/incidents/incident/add/", {"name": "Forged all clear", "status": "resolved"}),
        (
            reverse("admin:incidents_incident_change", args=[incident.pk]),
            {"name": "Renamed", "status": IncidentStatus.RESOLVED, "body": "All clear"},
        ),
        (reverse("admin:incidents_incident_delete", args=[incident.pk]), {"post": "yes"}),
        (reverse("admin:incidents_incident_resolve", args=[incident.pk]), {}),
        (
            "/admin/incidents/incident/",
            {"action": "resolve_selected", "_selected_action": [incident.pk], "index": 0},
        ),
        (reverse("admin:incidents_incidentdraft_publish", args=[draft.pk]), {}),
        (reverse("admin:incidents_incidentdraft_discard", args=[draft.pk]), {}),
        (reverse("admin:components_component_delete", args=[component.pk]), {"post": "yes"}),
        ("/admin/statuspage/apikey/add/", {"name": "Backdoor", "owner": half_signed_in.pk}),
        (reverse("admin:auth_user_delete", args=[victim.pk]), {"post": "yes"}),
        (
            "/admin/password_change/",
            {"old_password": PASSWORD, "new_password1": "x" * 20, "new_password2": "x" * 20},
        ),
        (reverse("admin:two_factor_backup_codes"), {}),
    ]
    for url, data in attempts:
        response = client.post(url, {"csrfmiddlewaretoken": csrf, **data})
        assert goes_to_second_step(response), (url, response.status_code)

    incident.refresh_from_db()
    assert incident.name == "Outage" and incident.status == IncidentStatus.INVESTIGATING
    assert Incident.objects.count() == 1 and IncidentUpdate.objects.count() == 1
    assert Component.objects.filter(pk=component.pk).exists()
    draft.refresh_from_db()
    assert draft.published_at is None and draft.discarded_at is None
    assert not ApiKey.objects.exists()
    assert User.objects.filter(pk=victim.pk).exists()
    half_signed_in.refresh_from_db()
    assert half_signed_in.check_password(PASSWORD)
    assert not StaticDevice.objects.exists()
    assert not LogEntry.objects.exists()


def test_an_enrolled_user_cannot_add_an_app_with_the_password_alone(client, half_signed_in):
    """Adding a new app would let the password skip the second step."""
    assert client.get(SET_UP)["Location"].startswith(SECOND_STEP)
    assert client.get(reverse("admin:two_factor_qr")).status_code == 403
    response = client.post(SET_UP, {"code": "123456"})
    assert response["Location"].startswith(SECOND_STEP)
    assert TOTPDevice.objects.filter(user=half_signed_in).count() == 1


def test_not_signed_in_the_two_factor_pages_send_to_the_login(client):
    for url in (SECOND_STEP, SET_UP, reverse("admin:two_factor_qr"), MANAGE):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(LOGIN), url


def test_an_inactive_or_non_staff_user_never_reaches_the_second_step(client):
    for user in (staff(is_active=False), staff(is_staff=False)):
        client.logout()
        client.force_login(user)
        response = client.get(SECOND_STEP)
        assert response.status_code == 302 and response["Location"].startswith(LOGIN)


# Enrolment ---------------------------------------------------------------------------------


def test_staff_without_a_second_factor_set_up_an_app_then_get_backup_codes(client):
    user = staff()

    response = password_step(client, user, next_url="/admin/incidents/incident/")
    to_set_up = client.get(response["Location"])
    assert to_set_up.status_code == 302 and to_set_up["Location"].startswith(SET_UP)
    page = client.get(to_set_up["Location"])
    assert "Set up two-factor authentication" in page.text
    assert goes_to_second_step(client.get("/admin/"))  # not in the admin yet

    device = TOTPDevice.objects.get(user=user, confirmed=False)
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page.text).group(1)
    assert secret.replace(" ", "") == b32encode(device.bin_key).decode()
    qr = client.get(reverse("admin:two_factor_qr"))
    assert qr["Content-Type"] == "image/svg+xml" and qr.content.startswith(b"<?xml")
    assert b"<script" not in qr.content
    # A reload shows the same key.
    assert secret in client.get(to_set_up["Location"]).text

    wrong = client.post(
        to_set_up["Location"], {"code": "000000" if code_of(device) != "000000" else "1"}
    )
    assert wrong.status_code == 200 and "not right" in wrong.text

    with time_machine.travel(timezone.now().timestamp() + 2, tick=False):  # the wrong code's wait
        confirmed = client.post(to_set_up["Location"], {"code": code_of(device)})
    assert confirmed.status_code == 302
    assert confirmed["Location"].startswith(reverse("admin:two_factor_backup_codes"))
    codes_page = client.get(confirmed["Location"])
    codes = re.findall(r"<li><code>([a-z0-9]+)</code></li>", codes_page.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert 'href="/admin/incidents/incident/"' in codes_page.text
    # Shown once.
    assert client.get(confirmed["Location"])["Location"] == MANAGE

    device.refresh_from_db()
    assert device.confirmed
    assert set(StaticToken.objects.values_list("token", flat=True)) == set(codes)
    assert client.get("/admin/incidents/incident/").status_code == 200

    # Next time: the app's code, or a backup code.
    client.post(reverse("admin:logout"))
    password_step(client, user)
    backup = StaticDevice.objects.get(user=user)
    assert second_step(client, backup, codes[3]).status_code == 302
    assert client.get("/admin/").status_code == 200


def test_making_new_backup_codes_stops_the_old_ones(client, password_only):
    user, device = password_only
    second_step(client, device, code_of(device))
    client.post(reverse("admin:two_factor_backup_codes"))
    first = re.findall(
        r"<li><code>([a-z0-9]+)</code></li>",
        client.get(reverse("admin:two_factor_backup_codes")).text,
    )

    client.post(reverse("admin:two_factor_backup_codes"))
    second = re.findall(
        r"<li><code>([a-z0-9]+)</code></li>",
        client.get(reverse("admin:two_factor_backup_codes")).text,
    )

    assert len(first) == len(second) == 10 and not set(first) & set(second)
    assert set(StaticToken.objects.values_list("token", flat=True)) == set(second)


@pytest.fixture
def verified_with_phone(client):
    user = staff()
    phone = with_app(user)
    password_step(client, user)
    second_step(client, phone, code_of(phone))
    return user, phone


def remove(client, device, *, code_from):
    """Asks to remove `device`, proving it is them with the next code of `code_from`."""
    with time_machine.travel(timezone.now().timestamp() + 31, tick=False):
        return client.post(
            reverse("admin:two_factor_remove", args=[device.persistent_id]),
            {"device": code_from.persistent_id, "code": code_of(code_from)},
        )


def test_removing_an_app_needs_a_current_code(client, verified_with_phone):
    user, phone = verified_with_phone
    tablet = TOTPDevice.objects.create(user=user, name="Tablet")
    remove_url = reverse("admin:two_factor_remove", args=[tablet.persistent_id])

    refused = client.post(remove_url, {"device": phone.persistent_id, "code": "nope"})
    assert refused.status_code == 200
    assert TOTPDevice.objects.filter(pk=tablet.pk).exists()

    assert remove(client, tablet, code_from=phone)["Location"] == MANAGE
    assert not TOTPDevice.objects.filter(pk=tablet.pk).exists()


def test_the_last_app_cannot_be_removed_while_two_factor_is_required(client, verified_with_phone):
    _, phone = verified_with_phone

    remove(client, phone, code_from=phone)

    assert TOTPDevice.objects.filter(pk=phone.pk).exists()


def test_another_users_device_cannot_be_removed(client, verified_with_phone):
    _, phone = verified_with_phone
    others = with_app(staff())

    remove(client, others, code_from=phone)

    assert TOTPDevice.objects.filter(pk=others.pk).exists()


# REQUIRE_2FA off ---------------------------------------------------------------------------


def test_with_two_factor_off_a_password_is_enough_and_every_admin_page_warns(client, settings):
    settings.REQUIRE_2FA = False
    user = staff()

    response = password_step(client, user)

    assert response["Location"] == "/admin/"
    for url in ("/admin/", "/admin/incidents/incident/", "/admin/incidents/incident/add/", MANAGE):
        page = client.get(url)
        assert page.status_code == 200
        assert "Two-factor authentication is not required" in page.text, url


def test_with_two_factor_off_staff_who_set_it_up_are_still_asked(client, settings):
    settings.REQUIRE_2FA = False
    user = staff()
    device = with_app(user)

    assert goes_to_second_step(password_step(client, user))
    assert goes_to_second_step(client.get("/admin/"))
    assert second_step(client, device, code_of(device)).status_code == 302
    assert client.get("/admin/").status_code == 200


def test_with_two_factor_on_there_is_no_warning(client, password_only):
    user, device = password_only
    second_step(client, device, code_of(device))

    page = client.get("/admin/")

    assert "Two-factor authentication is not required" not in page.text
    assert f'href="{MANAGE}"' in page.text


def test_superusers_see_devices_in_the_admin_but_never_their_secrets(client):
    owner = staff()
    device = with_app(owner)
    backup = StaticDevice.objects.create(user=owner, name="Backup codes")
    backup.token_set.create(token="k7m2p9q4rs")
    admin_user = staff(is_superuser=True)
    sign_in_staff(client, admin_user)

    listing = client.get("/admin/otp_totp/totpdevice/")
    change = client.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/")
    codes = client.get(f"/admin/otp_static/staticdevice/{backup.pk}/change/")
    qr = client.get(f"/admin/otp_totp/totpdevice/{device.pk}/qrcode/")

    assert listing.status_code == change.status_code == codes.status_code == 200
    assert device.key not in change.text and "k7m2p9q4rs" not in codes.text
    assert qr.status_code in (403, 404)


# Passkeys, server side (the whole ceremony runs in Chromium: test_passkeys_browser.py) ------

PASSKEY_REGISTER = reverse("otp_webauthn:credential-registration-begin")
PASSKEY_REGISTER_DONE = reverse("otp_webauthn:credential-registration-complete")
PASSKEY_AUTH = reverse("otp_webauthn:credential-authentication-begin")


def test_a_passkey_cannot_be_added_with_the_password_alone(client):
    enrolled, not_enrolled = staff(), staff()
    with_app(enrolled)
    for user in (enrolled, not_enrolled):  # either way the admin has not let the session in
        client.logout()
        password_step(client, user)

        begin = client.post(PASSKEY_REGISTER, content_type="application/json")
        complete = client.post(PASSKEY_REGISTER_DONE, {}, content_type="application/json")

        assert begin.status_code == complete.status_code == 403
        assert begin.json()["code"] == "user_not_verified"
        assert "otp_webauthn_register_state" not in client.session


def test_a_verified_session_may_start_adding_a_passkey_for_this_host(client, password_only):
    user, device = password_only
    second_step(client, device, code_of(device))

    options = client.post(PASSKEY_REGISTER, content_type="application/json")

    assert options.status_code == 200
    assert options.json()["rp"] == {"name": "Beacon", "id": "testserver"}
    assert options.json()["user"]["name"] == user.username


def test_passkey_sign_in_needs_the_password_first(client):
    """Passwordless sign-in is off: a passkey is a second factor only."""
    assert client.post(PASSKEY_AUTH, content_type="application/json").status_code == 403
    client.force_login(staff(is_staff=False))
    assert client.post(PASSKEY_AUTH, content_type="application/json").status_code == 403


def test_the_passkey_step_offers_only_the_users_own_passkeys(client):
    user = staff()
    with_app(user)
    own = WebAuthnCredential.objects.create(
        user=user, name="Laptop", credential_id=b"own-credential", public_key=b"x", confirmed=True
    )
    WebAuthnCredential.objects.create(
        user=staff(), name="Other", credential_id=b"other-credential", public_key=b"x"
    )
    password_step(client, user)

    page = client.get(SECOND_STEP)
    options = client.post(PASSKEY_AUTH, content_type="application/json").json()

    assert "Use a passkey" in page.text
    assert [c["id"] for c in options["allowCredentials"]] == [
        urlsafe_b64encode(own.credential_id).decode().rstrip("=")
    ]
    assert options["rpId"] == "testserver"


def test_a_verified_user_adds_a_second_app_and_keeps_their_backup_codes(client):
    user = staff()
    phone = with_app(user)
    backup = StaticDevice.objects.create(user=user, name="Backup codes")
    backup.token_set.create(token="k7m2p9q4rs")
    password_step(client, user)
    second_step(client, phone, code_of(phone))

    page = client.get(SET_UP)
    tablet = TOTPDevice.objects.get(user=user, confirmed=False)
    response = client.post(SET_UP, {"code": code_of(tablet)})

    assert "password only" not in page.text
    assert response["Location"] == MANAGE
    assert TOTPDevice.objects.filter(user=user, confirmed=True).count() == 2
    assert list(StaticToken.objects.values_list("token", flat=True)) == ["k7m2p9q4rs"]
    listed = client.get(MANAGE).text
    assert "<td>Phone</td>" in listed and "<td>Authenticator app</td>" in listed


# The audit trail ---------------------------------------------------------------------------


def test_the_trail_records_the_password_then_the_second_factor_and_failed_codes(
    client, password_only
):
    user, device = password_only
    wrong = "000001" if code_of(device) == "000000" else "000000"

    second_step(client, device, wrong)
    with time_machine.travel(timezone.now() + timedelta(seconds=5)):
        second_step(client, device, code_of(device))  # after the wrong code's 1 s wait

    actions = list(
        AuditEvent.objects.filter(actor=user).order_by("at", "id").values_list("action", flat=True)
    )
    assert actions == [
        AuditAction.SIGNED_IN,
        AuditAction.TWO_FACTOR_FAILED,
        AuditAction.TWO_FACTOR_VERIFIED,
    ]
    verified = AuditEvent.objects.get(action=AuditAction.TWO_FACTOR_VERIFIED)
    assert verified.detail == {"device": "TOTPDevice", "name": "Phone"}
    assert device.key not in str(verified.detail)


def test_the_trail_records_enrolment_new_backup_codes_and_removal(client):
    user = staff()
    password_step(client, user)
    client.get(SET_UP)
    device = TOTPDevice.objects.get(user=user)
    client.post(SET_UP, {"code": code_of(device)})
    client.post(reverse("admin:two_factor_backup_codes"))

    added = AuditEvent.objects.filter(actor=user, action=AuditAction.TWO_FACTOR_ADDED)
    assert [event.detail["device"] for event in added.order_by("id")] == [
        "TOTPDevice",
        "StaticDevice",
    ]

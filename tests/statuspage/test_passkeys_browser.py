"""Passkeys in Chromium with a virtual authenticator: added from the two-factor page, then
used as the second step of signing in."""

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential
from playwright.sync_api import expect

from tests.statuspage.test_two_factor import PASSWORD, code_of, staff


def virtual_authenticator(page):
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )


def sign_in_with_password(page, base, user):
    page.goto(f"{base}/admin/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


@pytest.mark.django_db(transaction=True)
def test_staff_add_a_passkey_and_sign_in_with_it(live_server, browser_page):
    page = browser_page
    base = live_server.url.replace("127.0.0.1", "localhost")  # passkeys need a domain name
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    virtual_authenticator(page)
    user = staff()
    app = TOTPDevice.objects.create(user=user, name="Phone")

    sign_in_with_password(page, base, user)
    expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    page.locator("#id_code").fill(code_of(app))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("link", name="Two-factor authentication")).to_be_visible()

    page.get_by_role("link", name="Two-factor authentication").click()
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.locator("#two-factor-list")).to_contain_text("Passkey")
    credential = WebAuthnCredential.objects.get(user=user)
    assert credential.confirmed

    page.get_by_role("button", name="Log out").click()
    sign_in_with_password(page, base, user)
    page.get_by_role("button", name="Use a passkey").click()

    page.wait_for_url(f"{base}/admin/")
    expect(page.get_by_role("link", name="Two-factor authentication")).to_be_visible()
    credential.refresh_from_db()
    assert credential.last_used_at is not None
    assert errors == []

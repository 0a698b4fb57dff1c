"""DKIM: every email Beacon sends over SMTP is signed when a key is set, and dkimpy, given
the public key as DNS would give it, verifies what a real SMTP server (aiosmtpd) received."""

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from django.core.exceptions import ImproperlyConfigured

from incidents.notify.channels.email import subscription_email_send
from statuspage import mail_dkim
from tests.incidents.factories import SubscriberFactory
from tests.incidents.notify.conftest import serving_smtp
from tests.incidents.notify.test_email import RecordingHandler, announce, deliver_all

pytestmark = pytest.mark.django_db

SELECTOR = "beacon2026"


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def dns_for(key, *, domain="acme.test", selector=SELECTOR):
    """dkimpy's DNS lookup, answered with the TXT record a domain owner would publish."""
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dnsfunc(name, timeout=5):
        return record if name == f"{selector}._domainkey.{domain}.".encode() else None

    return dnsfunc


@pytest.fixture
def signing(settings, rsa_key):
    """A real SMTP server, Django's mail pointed at it through the DKIM backend."""
    settings.DEFAULT_FROM_EMAIL = "status@acme.test"
    settings.BEACON_DKIM_PRIVATE_KEY = pem(rsa_key)
    settings.BEACON_DKIM_PRIVATE_KEY_FILE = ""
    settings.BEACON_DKIM_SELECTOR = SELECTOR
    settings.BEACON_DKIM_DOMAIN = ""
    with serving_smtp(RecordingHandler(), settings) as handler:
        settings.EMAIL_BACKEND = "statuspage.mail_dkim.EmailBackend"
        mail_dkim.check_configuration()
        yield handler


def signature_tags(raw: bytes) -> dict[str, str]:
    header = re.search(rb"^DKIM-Signature:(.*?)\r\n(?=\S)", raw, re.S | re.M)
    assert header, raw[:500]
    value = re.sub(rb"\s+", b"", header[1]).decode()
    return dict(tag.split("=", 1) for tag in value.split(";") if tag)


def replace_header(raw: bytes, name: bytes, value: bytes) -> bytes:
    head, _, body = raw.partition(b"\r\n\r\n")
    pattern = rb"^" + name + rb":.*?\r\n(?=\S)"
    changed = re.sub(pattern, name + b": " + value + b"\r\n", head + b"\r\n", flags=re.S | re.M)
    assert changed != head + b"\r\n", f"no {name!r} header"
    return changed + b"\r\n" + body


# What is signed


@pytest.mark.parametrize("which", ["confirm", "already_subscribed"])
def test_subscription_emails_are_signed_and_verify(page, signing, rsa_key, which):
    reader = SubscriberFactory(email="reader@example.test", unconfirmed=which == "confirm")

    subscription_email_send(which=which, subscriber=reader)

    [raw] = signing.raw
    assert raw.startswith(b"DKIM-Signature:")
    assert dkim.verify(raw, dnsfunc=dns_for(rsa_key))
    tags = signature_tags(raw)
    assert tags["d"] == "acme.test"  # DKIM_DOMAIN unset: the From address's domain
    assert tags["s"] == SELECTOR
    assert tags["c"] == "relaxed/relaxed"
    signed = tags["h"].lower().split(":")
    for name in ["from", "to", "subject", "date", "message-id", "list-id", "auto-submitted"]:
        assert name in signed
    for name in ["list-unsubscribe", "list-unsubscribe-post", "reply-to", "content-type"]:
        assert name in signed


def test_notifications_sent_in_batches_are_signed_with_the_unsubscribe_headers(
    page, signing, rsa_key
):
    readers = [SubscriberFactory(), SubscriberFactory()]
    _, event = announce()

    deliver_all(event)

    assert len(signing.raw) == len(readers)
    for raw in signing.raw:
        assert b"\r\nList-Unsubscribe: <https://status.acme.test/" in raw
        assert dkim.verify(raw, dnsfunc=dns_for(rsa_key))
        signed = signature_tags(raw)["h"].lower().split(":")
        assert {"list-unsubscribe", "list-unsubscribe-post", "list-id"} <= set(signed)


def test_a_changed_list_unsubscribe_breaks_the_signature(page, signing, rsa_key):
    SubscriberFactory()
    _, event = announce()
    deliver_all(event)
    [raw] = signing.raw
    dns = dns_for(rsa_key)
    assert dkim.verify(raw, dnsfunc=dns)

    changed = [
        replace_header(raw, b"List-Unsubscribe", b"<https://evil.test/unsubscribe/>"),
        replace_header(raw, b"List-Unsubscribe-Post", b"List-Unsubscribe=Other"),
        replace_header(raw, b"List-Id", b"Evil <evil.evil.test>"),
        replace_header(raw, b"Subject", b"[Acme] All clear"),
        replace_header(raw, b"From", b"Acme <status@evil.test>"),
        raw.replace(b"status.acme.test/incidents/", b"status.evil.test/incidents/", 1),
    ]
    for forged in changed:
        assert forged != raw
        assert not dkim.verify(forged, dnsfunc=dns)
    # Re-spacing a header (relaxed canonicalisation, as relays do) is not a change.
    respaced = raw.replace(b"\r\nList-Id: ", b"\r\nList-Id:    ", 1)
    assert respaced != raw
    assert dkim.verify(respaced, dnsfunc=dns)


def test_a_list_unsubscribe_added_to_a_message_without_one_breaks_the_signature(
    page, signing, rsa_key
):
    subscription_email_send(
        which="confirm", subscriber=SubscriberFactory(email="new@example.test", unconfirmed=True)
    )
    [raw] = signing.raw
    assert b"\r\nList-Unsubscribe:" not in raw
    head, _, body = raw.partition(b"\r\n\r\n")

    added = head + b"\r\nList-Unsubscribe: <https://evil.test/>\r\n\r\n" + body

    assert dkim.verify(raw, dnsfunc=dns_for(rsa_key))
    assert not dkim.verify(added, dnsfunc=dns_for(rsa_key))


def test_another_key_does_not_verify(page, signing):
    subscription_email_send(
        which="confirm", subscriber=SubscriberFactory(email="new@example.test", unconfirmed=True)
    )
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    assert not dkim.verify(signing.raw[0], dnsfunc=dns_for(other))


def test_dkim_domain_and_a_key_file_are_used_when_set(page, signing, settings, rsa_key, tmp_path):
    key_file = tmp_path / "dkim.pem"
    key_file.write_text(pem(rsa_key))
    settings.BEACON_DKIM_PRIVATE_KEY = ""
    settings.BEACON_DKIM_PRIVATE_KEY_FILE = str(key_file)
    settings.BEACON_DKIM_DOMAIN = "mail.acme.test"

    subscription_email_send(
        which="confirm", subscriber=SubscriberFactory(email="new@example.test", unconfirmed=True)
    )

    [raw] = signing.raw
    assert signature_tags(raw)["d"] == "mail.acme.test"
    assert dkim.verify(raw, dnsfunc=dns_for(rsa_key, domain="mail.acme.test"))


def test_without_a_key_mail_is_not_signed(page, settings):
    settings.BEACON_DKIM_PRIVATE_KEY = settings.BEACON_DKIM_PRIVATE_KEY_FILE = ""
    with serving_smtp(RecordingHandler(), settings) as handler:
        mail_dkim.check_configuration()
        subscription_email_send(
            which="confirm",
            subscriber=SubscriberFactory(email="new@example.test", unconfirmed=True),
        )

    assert b"DKIM-Signature" not in handler.raw[0]


# A key that cannot sign is refused at startup, never a silent unsigned send


@pytest.mark.parametrize(
    ("key", "selector", "domain", "message"),
    [
        ("not a key", SELECTOR, "", "cannot sign"),
        (
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            SELECTOR,
            "",
            "cannot sign",
        ),
        ("ED25519", SELECTOR, "", "cannot sign"),
        ("RSA", "", "", "DKIM_SELECTOR"),
        ("RSA", SELECTOR, "localhost", "DKIM_DOMAIN"),
    ],
)
def test_a_key_that_cannot_sign_is_a_clear_error(settings, rsa_key, key, selector, domain, message):
    if key == "RSA":
        key = pem(rsa_key)
    elif key == "ED25519":
        key = pem(ed25519.Ed25519PrivateKey.generate())
    settings.BEACON_DKIM_PRIVATE_KEY = key
    settings.BEACON_DKIM_SELECTOR = selector
    settings.BEACON_DKIM_DOMAIN = domain
    settings.DEFAULT_FROM_EMAIL = "status@localhost"
    settings.EMAIL_BACKEND = "statuspage.mail_dkim.EmailBackend"

    with pytest.raises(ImproperlyConfigured, match=message) as refused:
        mail_dkim.check_configuration()

    assert "AAAA" not in str(refused.value) and "PRIVATE KEY-----\n" not in str(refused.value)


def test_an_unreadable_key_file_or_two_keys_are_clear_errors(settings, rsa_key, tmp_path):
    settings.BEACON_DKIM_SELECTOR = SELECTOR
    settings.BEACON_DKIM_PRIVATE_KEY = ""
    settings.BEACON_DKIM_PRIVATE_KEY_FILE = str(tmp_path / "missing.pem")
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        mail_dkim.check_configuration()

    settings.BEACON_DKIM_PRIVATE_KEY = pem(rsa_key)
    with pytest.raises(ImproperlyConfigured, match="not both"):
        mail_dkim.check_configuration()


def test_a_key_with_a_backend_that_does_not_sign_is_a_clear_error(settings, rsa_key):
    settings.BEACON_DKIM_PRIVATE_KEY = pem(rsa_key)
    settings.BEACON_DKIM_PRIVATE_KEY_FILE = ""
    settings.BEACON_DKIM_SELECTOR = SELECTOR
    settings.DEFAULT_FROM_EMAIL = "status@acme.test"
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"

    with pytest.raises(ImproperlyConfigured, match="does not sign"):
        mail_dkim.check_configuration()


def run_manage(env_extra: dict) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "EMAIL_URL": "smtp://127.0.0.1:2525", **env_extra}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_process_refuses_to_start_with_a_bad_key_and_starts_with_a_good_one(rsa_key):
    bad = run_manage(
        {
            "DKIM_PRIVATE_KEY": "garbage",
            "DKIM_SELECTOR": SELECTOR,
            "DEFAULT_FROM_EMAIL": "status@acme.test",
        }
    )
    assert bad.returncode != 0
    assert "The DKIM private key cannot sign" in bad.stderr

    # A PEM in one line of an env file, its line breaks written as \n.
    one_line = pem(rsa_key).replace("\n", "\\n")
    good = run_manage(
        {
            "DKIM_PRIVATE_KEY": one_line,
            "DKIM_SELECTOR": SELECTOR,
            "DEFAULT_FROM_EMAIL": "status@acme.test",
        }
    )
    assert good.returncode == 0, good.stderr

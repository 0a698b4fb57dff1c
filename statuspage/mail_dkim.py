"""DKIM signatures on every email Beacon sends, when a key is configured (dkimpy).

Signing happens on the final bytes, in the SMTP connection's `sendmail`: Django's SMTP
backend hands it `message.as_bytes(linesep="\\r\\n")`, and the notification sender
(incidents.notify.channels.email.EmailSender) writes its own bytes to the same connection, so one
place signs both. The key, selector and domain come from the environment (settings.py);
a key that cannot sign stops every process at startup (check_configuration, called from
the app's ready()), so mail is never sent unsigned by mistake.
"""

import smtplib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import dkim
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend

SIGNING_BACKEND = "statuspage.mail_dkim.EmailBackend"

# What a forwarder or an attacker must not change or add. Headers a message lacks are signed
# as absent (RFC 6376 5.4.2), so nobody can add a List-Unsubscribe to a message without one.
SIGNED_HEADERS = (
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
)


@dataclass(frozen=True)
class DkimKey:
    private_key: bytes
    selector: str
    domain: str

    def sign(self, message: bytes) -> bytes:
        """`message` (CRLF line ends) with a DKIM-Signature header in front."""
        signature = dkim.sign(
            message,
            self.selector.encode(),
            self.domain.encode(),
            self.private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=[name.encode() for name in SIGNED_HEADERS],
        )
        return signature + message


def configured_key() -> DkimKey | None:
    """The key from the settings, or None when signing is off (no key given)."""
    return _key(
        settings.BEACON_DKIM_PRIVATE_KEY,
        settings.BEACON_DKIM_PRIVATE_KEY_FILE,
        settings.BEACON_DKIM_SELECTOR,
        settings.BEACON_DKIM_DOMAIN,
        settings.DEFAULT_FROM_EMAIL,
    )


@cache
def _key(text: str, path: str, selector: str, domain: str, from_email: str) -> DkimKey | None:
    if not text and not path:
        return None
    if text and path:
        raise ImproperlyConfigured("Set DKIM_PRIVATE_KEY or DKIM_PRIVATE_KEY_FILE, not both.")
    if path:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise ImproperlyConfigured(
                f"DKIM_PRIVATE_KEY_FILE {path!r} cannot be read: {error.strerror or error}"
            ) from None
        except UnicodeDecodeError:
            raise ImproperlyConfigured(
                f"DKIM_PRIVATE_KEY_FILE {path!r} is not a PEM text file."
            ) from None
    if not selector:
        raise ImproperlyConfigured("DKIM_SELECTOR must name the DNS selector of the DKIM key.")
    domain = domain or from_email.rpartition("@")[2].rstrip(">").strip()
    if "." not in domain:
        raise ImproperlyConfigured(
            f"DKIM_DOMAIN is not set and the From address's domain {domain!r} cannot sign: "
            "set DKIM_DOMAIN or DEFAULT_FROM_EMAIL."
        )
    key = DkimKey(private_key=text.strip().encode() + b"\n", selector=selector, domain=domain)
    try:
        key.sign(b"From: check@" + domain.encode() + b"\r\nSubject: check\r\n\r\ncheck\r\n")
    except Exception:  # dkimpy raises several kinds; the key's text must stay out of the log
        raise ImproperlyConfigured(
            "The DKIM private key cannot sign: DKIM_PRIVATE_KEY (or the file) must hold an "
            "RSA private key in PEM, -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE "
            "KEY-----."
        ) from None
    return key


def check_configuration() -> None:
    """ImproperlyConfigured unless signing is off, or on with a key that signs, for a backend
    that signs."""
    if configured_key() is None:
        return
    backend = settings.EMAIL_BACKEND
    if backend != SIGNING_BACKEND:
        raise ImproperlyConfigured(
            f"A DKIM key is set but mail goes through {backend}, which does not "
            "sign: set EMAIL_URL to an SMTP server, or unset the DKIM key."
        )


class _SigningSMTP(smtplib.SMTP):
    def sendmail(self, from_addr, to_addrs, msg, mail_options=(), rcpt_options=()):
        key = configured_key()
        if key is None:
            raise ImproperlyConfigured("The DKIM backend is in use but no DKIM key is set.")
        if isinstance(msg, str):
            msg = msg.encode("ascii")  # what smtplib does with text
        signed = key.sign(msg)
        return super().sendmail(from_addr, to_addrs, signed, mail_options, rcpt_options)


class _SigningSMTPSSL(_SigningSMTP, smtplib.SMTP_SSL):
    pass


class EmailBackend(SMTPBackend):
    """Django's SMTP backend, signing each message with the configured DKIM key."""

    @property
    def connection_class(self):
        return _SigningSMTPSSL if self.use_ssl else _SigningSMTP

"""Who may view /internal/ without PostgreSQL: allowed networks, and the signed links and
cookies of passwordless sign-in. Model-free: the page settings' text comes in as strings.

A sign-in link carries the address and a nonce, signed and dated (TimestampSigner through
django.core.signing); it is good for LINK_MAX_AGE and once: its nonce is marked used in the
shared cache. The viewer's cookie is the address, signed and dated, checked against
VIEWER_MAX_AGE: neither needs the database.
"""

import ipaddress
import secrets
from dataclasses import dataclass

from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.utils.translation import gettext

LINK_SALT = "beacon.internal.sign-in-link"
VIEWER_SALT = "beacon.internal.viewer"
LINK_MAX_AGE = 15 * 60
VIEWER_MAX_AGE = 12 * 3600
VIEWER_COOKIE = "beacon_internal"
USED_NONCE_KEY = "beacon:internal:used-link:{}"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _entries(text: str) -> list[str]:
    return [entry.strip() for entry in text.replace(",", "\n").splitlines() if entry.strip()]


def parse_networks(text: str) -> list[Network]:
    """CIDRs, one a line or comma-separated; ValidationError names the first bad one."""
    networks = []
    for entry in _entries(text):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValidationError(
                gettext("%(entry)s is not a network (write it like 10.0.0.0/8).")
                % {"entry": entry[:60]}
            ) from None
    return networks


def validate_networks(text: str) -> None:
    parse_networks(text)


def parse_domains(text: str) -> list[str]:
    """Email domains, one a line or comma-separated, lower case, without a leading @."""
    domains = []
    for entry in _entries(text):
        domain = entry.lower().removeprefix("@")
        labels = domain.split(".")
        if len(labels) < 2 or not all(
            label and len(label) <= 63 and label.replace("-", "").isalnum() for label in labels
        ):
            raise ValidationError(
                gettext("%(entry)s is not an email domain (write it like example.com).")
                % {"entry": entry[:60]}
            )
        domains.append(domain)
    return domains


def validate_domains(text: str) -> None:
    parse_domains(text)


def address_allowed(address: str, networks_text: str) -> bool:
    """Whether a client address (as the trusted proxy hops give it) is in an allowed network."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack socket's way of writing an IPv4 client
    try:
        networks = parse_networks(networks_text)
    except ValidationError:
        return False  # saved before validation or edited by hand: allow nothing
    return any(ip in network for network in networks if network.version == ip.version)


def email_allowed(email: str, domains_text: str) -> bool:
    """Whether the address is in one of the allowed domains (exactly, no subdomains)."""
    local, at, domain = email.strip().lower().rpartition("@")
    if not (local and at and domain):
        return False
    try:
        return domain in parse_domains(domains_text)
    except ValidationError:
        return False


def sign_in_token(email: str) -> str:
    payload = {"e": email, "n": secrets.token_urlsafe(16)}
    return signing.dumps(payload, salt=LINK_SALT, compress=True)


@dataclass(frozen=True)
class LinkCheck:
    email: str | None
    refusal: str  # "" when good: "bad", "expired", "used" or "unavailable"


def use_sign_in_token(token: str) -> LinkCheck:
    """The address of a good link, marking it used; a refusal for a tampered, expired or
    reused one."""
    try:
        payload = signing.loads(token, salt=LINK_SALT, max_age=LINK_MAX_AGE)
    except signing.SignatureExpired:
        return LinkCheck(None, "expired")
    except signing.BadSignature:
        return LinkCheck(None, "bad")
    if not isinstance(payload, dict) or not isinstance(payload.get("e"), str):
        return LinkCheck(None, "bad")
    nonce = str(payload.get("n", ""))
    # Kept past the link's own life, so a link cannot be used twice within it.
    try:
        first_use = cache.add(USED_NONCE_KEY.format(nonce), 1, LINK_MAX_AGE + 60)
    except Exception:
        return LinkCheck(None, "unavailable")  # whether it was used cannot be told
    if not first_use:
        return LinkCheck(None, "used")
    return LinkCheck(payload["e"], "")


def viewer_cookie_value(email: str) -> str:
    return signing.dumps({"e": email}, salt=VIEWER_SALT)


def viewer_from_cookie(value: str | None) -> str | None:
    """The signed-in address of a viewer's cookie, if it is genuine and younger than 12 h."""
    if not value:
        return None
    try:
        payload = signing.loads(value, salt=VIEWER_SALT, max_age=VIEWER_MAX_AGE)
    except signing.BadSignature:
        return None
    email = payload.get("e") if isinstance(payload, dict) else None
    return email if isinstance(email, str) else None

"""The page's VAPID key pair (RFC 8292): push services accept a push only when it is signed
with the private key whose public half the browser subscribed with.

Generated once, on first need, and kept in the var directory (`vapid_private_key.pem`, mode
0600). Whichever process needs it first (web, worker) makes it under a file lock, so two
processes starting together never end up with two keys; a key changed later would orphan
every browser subscribed with the old one. Processes that share no var directory (pods on
Kubernetes) are given the key instead: PUSH_VAPID_PRIVATE_KEY.
"""

import base64
import fcntl
import time
from email.utils import parseaddr
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from django.conf import settings
from py_vapid import Vapid02

from statuspage.lib.files import atomic_write

KEY_FILE = "vapid_private_key.pem"
# How long a VAPID signature is valid for; push services refuse more than 24 hours.
TOKEN_SECONDS = 12 * 3600


def key_path() -> Path:
    return Path(settings.VAR_DIR) / KEY_FILE


@cache
def _load(path: Path) -> Vapid02:
    return _existing(path) or _created(path)


def _existing(path: Path) -> Vapid02 | None:
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        return None
    return Vapid02.from_pem(pem)


def _created(path: Path) -> Vapid02:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Another process may have made it while this one waited for the lock.
        found = _existing(path)
        if found is not None:
            return found
        vapid = Vapid02()
        vapid.generate_keys()
        atomic_write(path, vapid.private_pem(), mode=0o600)
        return vapid


@cache
def _configured(pem: str) -> Vapid02:
    return Vapid02.from_pem(pem.strip().encode())


def vapid() -> Vapid02:
    """The page's key pair: the configured one, or the var dir's, made if need be."""
    pem: str = settings.BEACON_PUSH_VAPID_PRIVATE_KEY
    if pem:
        return _configured(pem)
    return _load(key_path())


def public_key() -> str:
    """The application server key browsers subscribe with: the uncompressed P-256 point,
    base64url without padding."""
    point = vapid().public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(point).rstrip(b"=").decode("ascii")


def subject() -> str:
    """Who runs this sender, for the push service (a mailto: or https: URL)."""
    configured: str = settings.BEACON_PUSH_VAPID_SUBJECT
    if configured:
        return configured
    return f"mailto:{parseaddr(settings.DEFAULT_FROM_EMAIL)[1]}"


def authorization(endpoint_origin: str, *, now: float | None = None) -> str:
    """The Authorization header of a push to an endpoint of this origin (scheme://host)."""
    claims = {
        "aud": endpoint_origin,
        "sub": subject(),
        "exp": int((now or time.time()) + TOKEN_SECONDS),
    }
    headers: dict[str, str] = vapid().sign(claims)
    return headers["Authorization"]

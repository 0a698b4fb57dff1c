"""Management API keys: made, checked and revoked here (statuspage.models.ApiKey)."""

import hashlib
import secrets
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import DatabaseError
from django.utils import timezone

from statuspage.lib.outage import database_read_only
from statuspage.models import ApiKey, ApiKeyScope

# Written at most this often per key: a busy script must not turn reads into writes.
LAST_USED_PRECISION = timedelta(minutes=1)
# The methods that only read. Anything else, however spelled, needs a write key.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The admin marks keys that stop working within this.
EXPIRY_WARNING = timedelta(days=7)
# Further than this is "never" (and near the end of the calendar, a date some zones cannot show).
LONGEST_EXPIRY = timedelta(days=36_500)


class ApiKeyExpired(Exception):
    """The key is right, active and its owner too, but its `expires_at` has come."""


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_key_create(
    *,
    owner,
    name: str,
    scope: str = ApiKeyScope.WRITE,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key for `owner`; returns the row and the key itself, which is never kept."""
    if scope not in ApiKeyScope.values:
        raise ValidationError({"scope": f"Choose one of {', '.join(ApiKeyScope.values)}."})
    if refused := api_key_expiry_error(expires_at):
        raise ValidationError({"expires_at": refused})
    raw = "bk_" + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        owner=owner,
        name=name.strip()[:100] or "API key",
        prefix=raw[:10],
        digest=_digest(raw),
        scope=scope,
        expires_at=expires_at,
    )
    return key, raw


def api_key_expiry_error(expires_at: datetime | None) -> str | None:
    """Why a new key cannot have this expiry, or None."""
    if expires_at is None:
        return None
    now = timezone.now()
    if expires_at <= now:
        return "This moment has passed: choose one to come, or none for a key that never expires."
    if expires_at - now > LONGEST_EXPIRY:
        return "At most a hundred years from now: choose none for a key that never expires."
    return None


def api_key_authenticate(raw: str) -> ApiKey | None:
    """The active key `raw` is, or None; notes when it was last used. A key that is good
    but past its expiry raises ApiKeyExpired, so its holder is told why."""
    if not raw or len(raw) > 200:
        return None
    key = ApiKey.objects.select_related("owner").filter(digest=_digest(raw)).first()
    if key is None or key.revoked_at is not None or not key.owner.is_active:
        return None  # a deactivated owner's keys stop with them
    if key.is_expired:
        raise ApiKeyExpired
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
        try:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        except DatabaseError as error:
            # A standby region's database: its reads still answer; the use goes unnoted.
            if not database_read_only(error):
                raise
        key.last_used_at = now
    return key


def api_key_allows(*, key: ApiKey, method: str) -> bool:
    """Whether `key` may make a request with this HTTP method: a read-only key only reads."""
    return method in READ_METHODS or not key.is_read_only


def api_key_revoke(*, key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())

"""Management API keys: made, checked and revoked here (statuspage.models.ApiKey)."""

import hashlib
import secrets
from datetime import timedelta

from django.utils import timezone

from statuspage.models import ApiKey

# Written at most this often per key: a busy script must not turn reads into writes.
LAST_USED_PRECISION = timedelta(minutes=1)


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_key_create(*, owner, name: str) -> tuple[ApiKey, str]:
    """A new key for `owner`; returns the row and the key itself, which is never kept."""
    raw = "bk_" + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        owner=owner, name=name.strip()[:100] or "API key", prefix=raw[:10], digest=_digest(raw)
    )
    return key, raw


def api_key_authenticate(raw: str) -> ApiKey | None:
    """The active key `raw` is, or None; notes when it was last used."""
    if not raw or len(raw) > 200:
        return None
    key = ApiKey.objects.select_related("owner").filter(digest=_digest(raw)).first()
    if key is None or not key.is_active or not key.owner.is_active:
        return None  # a deactivated owner's keys stop with them
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def api_key_revoke(*, key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())

"""Management API keys: made, checked and revoked here (statuspage.models.ApiKey).

A request's key is checked against a small record kept in the cache for AUTH_CACHE_SECONDS
under its SHA-256 (never the key itself): in the common case one cache lookup, no query.
What the record says (revoked, owner active, permissions, scope) may thus be that long out
of date, except where Beacon itself changes it: revoking a key, saving or deleting its owner
and deleting the key forget the record at once.
"""

import dataclasses
import hashlib
import logging
import secrets
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import partial

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from statuspage.lib.outage import database_read_only
from statuspage.lib.replica import reading_from_primary
from statuspage.models import ApiKey, ApiKeyScope

# Written at most this often per key: a busy script must not turn reads into writes.
LAST_USED_PRECISION = timedelta(minutes=1)
# The methods that only read. Anything else, however spelled, needs a write key.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The admin marks keys that stop working within this.
EXPIRY_WARNING = timedelta(days=7)
# Further than this is "never" (and near the end of the calendar, a date some zones cannot show).
LONGEST_EXPIRY = timedelta(days=36_500)
# How long a checked key is believed without looking at its row: the most a change made
# behind Beacon's back (a raw UPDATE, a group's permissions) takes to apply. Redis keeps it
# int(1.0) = 1 whole second (Django truncates a timeout), never longer.
AUTH_CACHE_SECONDS = 1.0
_CACHE_KEY_PREFIX = "beacon:api-v1:key:2:"  # 2: records name their key (label)

logger = logging.getLogger("beacon.api")


class ApiKeyExpired(Exception):
    """The key is right, active and its owner too, but its `expires_at` has come."""


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _cache_key_for_digest(digest: str) -> str:
    return _CACHE_KEY_PREFIX + digest


def auth_cache_key(raw: str) -> str:
    """Where the record of key `raw` is cached: named by its digest, as its row is."""
    return _cache_key_for_digest(_digest(raw))


@dataclasses.dataclass(frozen=True)
class KeyRecord:
    """What a request needs to know of its key and the key's owner, as the database said
    when the record was made; small and plain, so that it pickles into the cache."""

    key_pk: int
    label: str  # "name (prefix…)", as the audit trail names the key
    owner_pk: int
    owner_username: str
    read_only: bool
    expires_at: float | None  # epoch seconds
    last_used_at: float | None  # epoch seconds
    superuser: bool
    # The owner's permissions ("app.codename"), from their groups and their own; a
    # superuser's are all, and not listed.
    perms: frozenset[str]
    # AUTH_CACHE_SECONDS after the rows were read, not after the record was kept: a revoke
    # that lands between the read and the keeping still applies within the second.
    valid_until: float

    def has_perms(self, *perms: str) -> bool:
        """As User.has_perms for the (active) owner."""
        return self.superuser or self.perms.issuperset(perms)

    def is_expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def needs_last_used_write(self, now: float) -> bool:
        return (
            self.last_used_at is None
            or now - self.last_used_at > LAST_USED_PRECISION.total_seconds()
        )


def record_from_cache(value: object) -> KeyRecord | None:
    """The record a cache value holds, or None: missing, or of another shape (a record
    pickled by an older release lacks the fields added since)."""
    if not isinstance(value, KeyRecord):
        return None
    if not all(hasattr(value, field.name) for field in dataclasses.fields(KeyRecord)):
        return None
    if time.time() >= value.valid_until:
        return None
    return value


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


def api_key_authenticate(raw: str) -> KeyRecord | None:
    """The record of the active key `raw` is, or None; notes when it was last used. A key
    that is good but past its expiry raises ApiKeyExpired, so its holder is told why.

    From the cache when it holds the key; otherwise, or when the use is due to be noted,
    from the rows, kept for AUTH_CACHE_SECONDS.
    """
    if not raw or len(raw) > 200:
        return None
    digest = _digest(raw)
    now = time.time()
    record = _cached(digest)
    if record is None or (record.needs_last_used_write(now) and not record.is_expired(now)):
        # Read afresh before keeping it again: a record re-kept as it was would outlive
        # AUTH_CACHE_SECONDS.
        record = _load(digest, now)
    if record is None:
        return None
    if record.is_expired(now):
        raise ApiKeyExpired
    return record


def _cached(digest: str) -> KeyRecord | None:
    try:
        value = cache.get(_cache_key_for_digest(digest))
    except Exception:
        # Redis away (or a value that no longer unpickles): the rows answer.
        logger.debug("API key cache unavailable", exc_info=True)
        return None
    return record_from_cache(value)


def _load(digest: str, now: float) -> KeyRecord | None:
    """The record from the primary (a revoked key stops there first), kept in the cache."""
    read_at = time.time()
    with reading_from_primary():
        key = ApiKey.objects.select_related("owner").filter(digest=digest).first()
        if key is None or key.revoked_at is not None or not key.owner.is_active:
            return None  # a deactivated owner's keys stop with them
        owner = key.owner
        perms = frozenset() if owner.is_superuser else frozenset(owner.get_all_permissions())
    record = KeyRecord(
        key_pk=key.pk,
        label=f"{key.name} ({key.prefix}…)",
        owner_pk=owner.pk,
        owner_username=owner.get_username(),
        read_only=key.is_read_only,
        expires_at=key.expires_at.timestamp() if key.expires_at else None,
        last_used_at=key.last_used_at.timestamp() if key.last_used_at else None,
        superuser=owner.is_superuser,
        perms=perms,
        valid_until=read_at + AUTH_CACHE_SECONDS,
    )
    if not record.is_expired(now) and record.needs_last_used_write(now):
        _note_use(key.pk, now)
        record = dataclasses.replace(record, last_used_at=now)
    try:
        cache.set(_cache_key_for_digest(digest), record, AUTH_CACHE_SECONDS)
    except Exception:
        logger.debug("API key cache unavailable", exc_info=True)
    return record


def _note_use(key_pk: int, now: float) -> None:
    try:
        ApiKey.objects.filter(pk=key_pk).update(last_used_at=datetime.fromtimestamp(now, tz=UTC))
    except DatabaseError as error:
        # A standby region's database: its reads still answer; the use goes unnoted.
        if not database_read_only(error):
            raise


def api_key_allows(*, key: KeyRecord, method: str) -> bool:
    """Whether `key` may make a request with this HTTP method: a read-only key only reads."""
    return method in READ_METHODS or not key.read_only


def api_key_revoke(*, key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key_forget(digests=[key.digest])


def api_key_forget(*, digests: Iterable[str]) -> None:
    """The cached records of these keys go: their next request reads the rows."""
    cache_keys = [_cache_key_for_digest(digest) for digest in digests]
    if not cache_keys:
        return
    _delete_records(cache_keys)
    if connection.in_atomic_block:
        # A request that read the rows before this transaction commits may have kept
        # them again: forget once more when the change is visible.
        transaction.on_commit(partial(_delete_records, cache_keys))


def _delete_records(cache_keys: list[str]) -> None:
    try:
        cache.delete_many(cache_keys)
    except Exception:
        # Without the cache nothing was kept either, or it ends within AUTH_CACHE_SECONDS.
        logger.warning("could not forget cached API keys", exc_info=True)


def on_owner_saved(sender, instance, update_fields=None, **kwargs) -> None:
    """A user saved (deactivated, no longer a superuser…): their keys' records go. Not
    for a sign-in, which only notes its time."""
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return
    digests = ApiKey.objects.filter(owner_id=instance.pk, revoked_at__isnull=True)
    api_key_forget(digests=list(digests.values_list("digest", flat=True)))


def on_key_changed(sender, instance: ApiKey, **kwargs) -> None:
    """A key saved (renamed, say) or deleted, alone or with its owner (the cascade sends
    this for each key)."""
    api_key_forget(digests=[instance.digest])

"""The audit trail: who signed in (or failed to), who added, changed or deleted what, through
the admin or the management API (statuspage.models.AuditEvent).

`audit_record` is the one way in. It is fed from the edges, never from domain services
(components and incidents know nothing of it), because every write staff make already
passes through one of them:

- sign-in, sign-out and failed sign-ins: Django's auth signals (wired in statuspage.apps);
  a lock-out: statuspage.access;
- everything done in the admin: Django writes a LogEntry for each add, change and delete
  (settings and API keys included), which is copied here with the request's address;
- the management API: `request_middleware` records each write a key made, as its owner;
- the second sign-in step: `audit_two_factor`, called by the 2FA views.

An event keeps field names, never values: no password, key or token reaches the trail.
"""

import csv
import functools
import io
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ObjectDoesNotExist
from django.db import IntegrityError, models
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from statuspage.api_v1.fragments import AUDIT_TARGET
from statuspage.api_v1.keys import KeyRecord
from statuspage.lib.ratelimit import client_ip
from statuspage.lib.text import spreadsheet_cell
from statuspage.models import AuditAction, AuditEvent, AuditSource

logger = logging.getLogger(__name__)

# The request being answered, so that events recorded from signals (a LogEntry saved by the
# admin) know the address it came from.
_current_request: ContextVar[HttpRequest | None] = ContextVar("audit_request", default=None)

API_WRITES = {
    "POST": AuditAction.ADDED,
    "PUT": AuditAction.CHANGED,
    "PATCH": AuditAction.CHANGED,
    "DELETE": AuditAction.DELETED,
}
LOG_ENTRY_ACTIONS = {
    ADDITION: AuditAction.ADDED,
    CHANGE: AuditAction.CHANGED,
    DELETION: AuditAction.DELETED,
}
PRUNE_BATCH = 5_000


def audit_record(
    *,
    actor,
    action: str,
    source: str = AuditSource.ADMIN,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str = "",
    target_repr: str = "",
    detail: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    actor_name: str = "",
) -> AuditEvent:
    """Record one event. `actor` is a user or None (an anonymous or unknown one); `actor_name`
    is kept as well, so the trail still names them once the user is deleted. `target` is a
    model instance, or give its type, id and description. `request` defaults to the one being
    answered; its client address (through TRUSTED_PROXY_HOPS) is kept."""
    user = actor if getattr(actor, "pk", None) is not None else None
    if user is not None and not actor_name:
        actor_name = user.get_username()
    if target is not None:
        meta = target._meta
        target_type = target_type or f"{meta.app_label}.{meta.model_name}"
        target_id = target_id or str(target.pk or "")
        target_repr = target_repr or str(target)
    request = request or _current_request.get()
    return AuditEvent.objects.create(
        at=timezone.now(),
        actor=user,
        actor_name=(actor_name or "")[:150],
        action=action,
        source=source,
        target_type=target_type[:100],
        target_id=str(target_id)[:64],
        target_repr=target_repr[:200],
        ip_address=client_ip(request) if request is not None else "",
        detail=detail or {},
    )


def audit_two_factor(*, request: HttpRequest, user, action: str, device=None) -> AuditEvent:
    """For the second sign-in step and the 2FA settings: `action` is one of
    AuditAction.TWO_FACTOR_VERIFIED, _FAILED, _ADDED or _REMOVED; `device` the django-otp
    device used, added or removed (its kind and name are kept, never its secret)."""
    detail = {}
    if device is not None:
        detail = {"device": type(device).__name__, "name": str(getattr(device, "name", ""))}
    return audit_record(
        actor=user,
        action=action,
        source=AuditSource.SIGN_IN,
        target=user,
        detail=detail,
        request=request,
    )


def audit_prune(*, now: datetime | None = None) -> int:
    """Delete events older than AUDIT_RETENTION_DAYS (0 keeps them all); returns how many."""
    days = settings.BEACON_AUDIT_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted = 0
    while True:  # in batches: a first prune of years of events must not hold one huge lock
        batch = list(
            AuditEvent.objects.filter(at__lt=cutoff).values_list("pk", flat=True)[:PRUNE_BATCH]
        )
        if not batch:
            return deleted
        deleted += AuditEvent.objects.filter(pk__in=batch).delete()[0]


CSV_COLUMNS = [
    "time",
    "username",
    "action",
    "source",
    "target type",
    "target id",
    "target",
    "client address",
    "detail",
]


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
def audit_csv_rows(events: Iterable[AuditEvent]) -> Iterator[str]:
    """The events as CSV lines, one at a time (for a streamed export). A cell a spreadsheet
    would take for a formula is prefixed with a quote, so it is shown as text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(cells: list[str]) -> str:
        writer.writerow([spreadsheet_cell(cell) for cell in cells])
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(CSV_COLUMNS)
    for event in events:
        yield line(
            [
                event.at.isoformat(),
                event.actor_name,
                event.action,
                event.source,
                event.target_type,
                event.target_id,
                event.target_repr,
                event.ip_address,
                json.dumps(event.detail, ensure_ascii=False, sort_keys=True)
                if event.detail
                else "",
            ]
        )


# Sign-in signals (connected in statuspage.apps).


def on_signed_in(sender, request, user, **kwargs) -> None:
    audit_record(
        actor=user, action=AuditAction.SIGNED_IN, source=AuditSource.SIGN_IN, request=request
    )


def on_signed_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        audit_record(
            actor=user, action=AuditAction.SIGNED_OUT, source=AuditSource.SIGN_IN, request=request
        )


def on_sign_in_failed(sender, credentials, request=None, **kwargs) -> None:
    """The username tried (it may name nobody); Django has already masked the password in
    `credentials`, and only the username is read from them."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    tried = str(credentials.get(User.USERNAME_FIELD) or "")
    user = User._default_manager.filter(**{User.USERNAME_FIELD: tried}).first() if tried else None
    detail = {"locked_out": True} if getattr(request, "axes_locked_out", False) else {}
    audit_record(
        actor=user,
        actor_name=tried,
        action=AuditAction.SIGN_IN_FAILED,
        source=AuditSource.SIGN_IN,
        detail=detail,
        request=request,
    )


# The admin: every add, change and delete writes a LogEntry.


def on_log_entry_saved(sender, instance: LogEntry, created: bool, raw: bool = False, **kwargs):
    if not created or raw:
        return
    target_type = ""
    if instance.content_type_id is not None:
        content_type = ContentType.objects.get_for_id(instance.content_type_id)  # cached
        target_type = f"{content_type.app_label}.{content_type.model}"
    action = LOG_ENTRY_ACTIONS.get(instance.action_flag, AuditAction.CHANGED)
    if target_type == "statuspage.apikey" and action == AuditAction.ADDED:
        action = AuditAction.API_KEY_CREATED
    audit_record(
        actor=instance.user,
        action=action,
        source=AuditSource.ADMIN,
        target_type=target_type,
        target_id=instance.object_id or "",
        target_repr=instance.object_repr,
        detail=_changed_fields(instance.change_message),
    )


def _changed_fields(change_message: str) -> dict[str, Any]:
    """The field names from a LogEntry's JSON change message (it holds no values)."""
    try:
        messages = json.loads(change_message or "[]")
    except ValueError:
        return {"message": change_message[:500]}
    fields: list[str] = []
    related: list[str] = []
    for message in messages if isinstance(messages, list) else []:
        for change in message.values() if isinstance(message, dict) else []:
            if not isinstance(change, dict):
                continue
            fields.extend(str(field) for field in change.get("fields", []))
            if change.get("name"):
                related.append(f"{change['name']}: {change.get('object', '')}"[:200])
    detail: dict[str, Any] = {}
    if fields:
        detail["fields"] = sorted(set(fields))
    if related:
        detail["related"] = related
    return detail


# The management API: each write a key made.


def request_middleware(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    """Keeps the request at hand for events recorded from signals, and records management
    API writes that succeeded (the key is known once ninja has checked it)."""

    def middleware(request: HttpRequest) -> HttpResponse:
        token = _current_request.set(request)
        try:
            response = get_response(request)
        finally:
            _current_request.reset(token)
        record = getattr(request, "auth", None)
        action = API_WRITES.get(request.method or "")
        if isinstance(record, KeyRecord) and action is not None and response.status_code < 400:
            _record_api_write(request, response, record, action)
        return response

    return middleware


def _record_api_write(request: HttpRequest, response: HttpResponse, key: KeyRecord, action: str):
    # /api/v1/pages/<page>/<kind>[/<id>[/…]]: the kind and id; a new row's id is in the answer.
    path = request.path_info.removesuffix("/")
    parts = path.split("/pages/", 1)[-1].split("/")[1:]
    target_type = parts[0] if parts else ""
    target_id = parts[1] if len(parts) > 1 else ""
    named = getattr(response, AUDIT_TARGET, None)
    if named is None:  # read from the answer (a long incident's is large: views name it)
        body = _json(getattr(response, "content", b""))
        named = (str(body.get("id") or ""), _repr_in(body)) if isinstance(body, dict) else ("", "")
    if not target_id and action == AuditAction.ADDED:
        target_id = named[0]
    target_repr = named[1]
    record = functools.partial(
        audit_record,
        actor_name=key.owner_username,
        action=action,
        source=AuditSource.API,
        target_type=target_type,
        target_id=target_id,
        target_repr=target_repr,
        request=request,
        detail={
            "method": request.method,
            "path": path[:300],
            "key": key.label,
            "fields": _field_names(request),
        },
    )
    try:
        record(actor=_key_owner(request))
    except IntegrityError:  # the key's owner was deleted during the request
        record(actor=None)


def _repr_in(body: dict) -> str:
    return str(body.get("name") or body.get("email") or body.get("endpoint") or "")


def _key_owner(request: HttpRequest) -> Any:
    """The key's owner (read now if the write did not need them), or None if deleted since."""
    try:
        return request.user if getattr(request.user, "pk", None) is not None else None
    except ObjectDoesNotExist:
        return None


def _json(content: bytes) -> Any:
    try:
        return json.loads(content) if content else None
    except ValueError:
        return None


def _field_names(request: HttpRequest) -> list[str]:
    """`incident.name`, `incident.status`…: the names a write sent, not their values."""
    if request.content_type == "application/x-www-form-urlencoded":
        return sorted({key.replace("[]", "") for key in request.POST})[:50]
    try:
        data = _json(request.body)
    except Exception:  # a multipart body already read as a stream
        return []
    names: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, dict):
                names.extend(f"{key}.{inner}" for inner in value)
            else:
                names.append(str(key))
    return sorted(names)[:50]

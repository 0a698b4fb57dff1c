"""Brute-force protection around staff sign-in (django-axes; docs/security.md).

Axes counts failed sign-ins per username and per client address (statuspage.lib.ratelimit's
client_ip, so X-Forwarded-For counts only through TRUSTED_PROXY_HOPS) and refuses every
sign-in, the right password included, once either has failed LOGIN_FAILURE_LIMIT times
within LOGIN_COOLOFF_MINUTES. Here: the page a refused sign-in sees, and telling staff.
"""

import ipaddress
import logging
from datetime import timedelta
from typing import Any

from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from incidents.automatic import staff_alert
from statuspage.audit import audit_record
from statuspage.lib.ratelimit import client_ip, digest
from statuspage.models import AuditAction, AuditSource

logger = logging.getLogger("beacon.access")

# Set while a lock-out lasts (renewed by each refused attempt): staff hear of it once.
NOTICE_KEY = "beacon:lockout:{kind}:{digest}"


def cool_off() -> timedelta:
    return get_cool_off() or timedelta(minutes=15)


def client_address(request: HttpRequest) -> str | None:
    """client_ip, when it is an address: axes keeps it in an address column, and what a
    client or a misconfigured proxy chain put in X-Forwarded-For may be anything. Those that
    are not addresses are counted together, under none."""
    value = client_ip(request)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def username_tried(request: HttpRequest, credentials: dict | None) -> str | None:
    """The username as axes counts and keeps it: no longer than any real one (150), so that a
    5,000-character guess is counted, not a 500 at the database."""
    data = credentials if credentials else getattr(request, "data", request.POST)
    value = data.get(get_user_model().USERNAME_FIELD)  # axes reads the same field
    return None if value is None else str(value)[:150]


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """A sign-in refused: the admin's look, when to try again, and the same words whether
    the username exists or not (axes counts unknown usernames too)."""
    wait = cool_off()
    until = timezone.now() + wait
    context = {
        **admin.site.each_context(request),
        "title": "Too many failed sign-ins",
        "until": until,
        "minutes": max(1, round(wait.total_seconds() / 60)),
    }
    response = TemplateResponse(request, "admin/locked_out.html", context, status=429)
    response["Retry-After"] = str(int(wait.total_seconds()))
    return response.render()


def on_locked_out(
    sender, request: HttpRequest, username: str | None, ip_address: str | None, **kwargs
):
    """Axes says this attempt is, or ends in, a lock-out (it says so at every refused attempt
    while it lasts): record and tell staff the first time, keep quiet for the rest."""
    username = username or ""
    since = timezone.now() - cool_off()
    recent = AccessAttempt.objects.filter(attempt_time__gte=since)
    by_user = _failures(recent.filter(username=username)) if username else 0
    by_address = _failures(recent.filter(ip_address=ip_address))  # None: IS NULL
    limit = settings.AXES_FAILURE_LIMIT
    account_locked = by_user >= limit
    if account_locked:
        key = NOTICE_KEY.format(kind="account", digest=digest(username))
    else:
        key = NOTICE_KEY.format(kind="address", digest=digest(ip_address or ""))
    if not _first_notice(key):
        return
    until = timezone.now() + cool_off()
    user = _user(username) if account_locked else None
    audit_record(
        actor=user,
        actor_name=username,
        action=AuditAction.LOCKED_OUT,
        source=AuditSource.SIGN_IN,
        detail={
            "locked": "account" if account_locked else "address",
            "failures": by_user if account_locked else by_address,
            "until": until.isoformat(),
        },
        request=request,
    )
    _tell_staff(
        username=username,
        ip_address=ip_address,
        account_locked=account_locked,
        failures=by_user if account_locked else by_address,
        until=until,
        user=user,
    )


def _failures(attempts) -> int:
    return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0


def _first_notice(key: str) -> bool:
    """Whether this lock-out is news; each later call keeps the mark as long as the lock-out.
    When the cache cannot say, staff are told again rather than not at all."""
    seconds = int(cool_off().total_seconds())
    try:
        if cache.add(key, 1, timeout=seconds):
            return True
        cache.touch(key, timeout=seconds)
        return False
    except Exception:
        logger.warning("lock-out notice not deduplicated: the cache is unreachable", exc_info=True)
        return True


def _user(username: str):
    User = get_user_model()
    return User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()


def _tell_staff(*, username, ip_address, account_locked, failures, until, user) -> None:
    """Staff by the staff alert path (email and STAFF_WEBHOOK_URL), and the locked person by
    email when they are not among staff already. The password tried is never in it."""
    when = until.strftime("%Y-%m-%d %H:%M %Z")
    ip_address = ip_address or "an unreadable address"
    if account_locked:
        subject = f"Sign-in locked for {username!r}"
        text = (
            f"Sign-in as {username!r} failed {failures} times in a row; it is refused, even "
            f"with the right password, until {when} (the last attempt came from "
            f"{ip_address}).\n\n"
            "If this was not you, someone is guessing the password: keep it strong and make "
            "sure a second factor is set up. Another admin can lift the lock-out in the "
            "admin's Access attempts."
        )
    else:
        subject = f"Sign-in locked for the address {ip_address}"
        text = (
            f"The address {ip_address} failed to sign in {failures} times (last as "
            f"{username!r}); every sign-in from it is refused until {when}."
        )
    # To the locked person, with staff in copy; to staff alone when the name is nobody's.
    email = user.email if user is not None and user.is_active else ""
    staff_alert(subject=subject, text=text, contact=email)

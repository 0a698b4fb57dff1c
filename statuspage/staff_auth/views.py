"""The second step of staff sign-in, enrolment and the page to manage second factors.

`second_step`, `set_up_app` and `set_up_qr` are for a session that has passed the password
only; the others are admin views (the admin site lets in only a verified session).
"""

import io
from base64 import b32encode
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeAlias

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_http_methods
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp_webauthn.models import WebAuthnCredential

from statuspage.audit import audit_two_factor
from statuspage.models import AuditAction
from statuspage.staff_auth import services
from statuspage.staff_auth.forms import CodeForm, ConfirmAppForm
from statuspage.staff_auth.links import with_next

BACKUP_CODES_SESSION_KEY = "beacon_backup_codes"

View: TypeAlias = Callable[..., HttpResponse]


def staff_session(view: View) -> View:
    """Signed in by password as active staff (verified or not); others go to the login."""

    @wraps(view)
    def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not (user.is_authenticated and user.is_active and user.is_staff):
            return redirect(with_next(reverse("admin:login"), reverse("admin:index")))
        return view(request, *args, **kwargs)

    return csrf_protect(never_cache(inner))


def _staff(request: HttpRequest) -> User:
    """The signed-in user: every view here is behind staff_session or the admin's login."""
    user = request.user
    assert user.is_authenticated
    return user


def _next_url(request: HttpRequest) -> str:
    url = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME, "")
    if url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return reverse("admin:index")


def _context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    return {**admin.site.each_context(request), **extra}


def may_add_factor(request: HttpRequest) -> bool:
    """A verified session, or one whose user has no factor yet (enrolment). Never a session
    that passed only the password of an enrolled user: that would skip the second step."""
    user = _staff(request)
    return services.is_verified(user) or not services.has_second_factor(user)


@staff_session
@require_http_methods(["GET", "POST"])
def second_step(request: HttpRequest) -> HttpResponse:
    user = _staff(request)
    next_url = _next_url(request)
    if services.second_factor_passed(user):
        return HttpResponseRedirect(next_url)
    if not services.has_second_factor(user):
        return redirect(with_next(reverse("admin:two_factor_set_up"), next_url))
    form = CodeForm(user, request.POST or None)
    if request.method == "POST" and not form.is_valid():
        audit_two_factor(request=request, user=user, action=AuditAction.TWO_FACTOR_FAILED)
    if request.method == "POST" and form.is_valid():
        otp_login(request, form.verified_device)
        audit_two_factor(
            request=request,
            user=user,
            action=AuditAction.TWO_FACTOR_VERIFIED,
            device=form.verified_device,
        )
        left = services.backup_codes_left(user)
        if isinstance(form.verified_device, StaticDevice) and left < 3:
            messages.warning(
                request,
                ngettext(
                    "%(left)s backup code left: make new ones on the two-factor page.",
                    "%(left)s backup codes left: make new ones on the two-factor page.",
                    left,
                )
                % {"left": left},
            )
        return HttpResponseRedirect(next_url)
    has_passkey = WebAuthnCredential.objects.filter(user=user, confirmed=True).exists()
    return render(
        request,
        "admin/two_factor/second_step.html",
        _context(
            request,
            title=gettext("Two-factor authentication"),
            form=form,
            has_codes=bool(form.devices),
            has_passkey=has_passkey,
            next=next_url,
        ),
    )


@staff_session
@require_http_methods(["GET", "POST"])
def set_up_app(request: HttpRequest) -> HttpResponse:
    """Add an authenticator app: scan, confirm with a code; the first time, backup codes."""
    if not may_add_factor(request):
        return redirect(with_next(reverse("admin:two_factor"), _next_url(request)))
    user = _staff(request)
    device = services.totp_device_for_enrolment(user=user)
    form = ConfirmAppForm(device, request.POST or None)
    if request.method == "POST" and form.is_valid():
        device.refresh_from_db()  # its last used step, saved by the check
        codes = services.totp_confirm(device=device)
        audit_two_factor(
            request=request, user=user, action=AuditAction.TWO_FACTOR_ADDED, device=device
        )
        if not services.is_verified(user):
            otp_login(request, device)
        if codes:
            request.session[BACKUP_CODES_SESSION_KEY] = codes
            return redirect(with_next(reverse("admin:two_factor_backup_codes"), _next_url(request)))
        messages.success(request, gettext("The authenticator app is added."))
        return redirect("admin:two_factor_manage")
    secret = b32encode(device.bin_key).decode()
    return render(
        request,
        "admin/two_factor/set_up.html",
        _context(
            request,
            title=gettext("Set up two-factor authentication"),
            form=form,
            secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
            enrolling=not services.has_second_factor(user),
            half_signed_in=not admin.site.has_permission(request),
            next=_next_url(request),
        ),
    )


@staff_session
@require_GET
def set_up_qr(request: HttpRequest) -> HttpResponse:
    """The QR code of the app being added, as SVG (an image from our origin: no inline code)."""
    if not may_add_factor(request):
        return HttpResponse(status=403)
    device = services.totp_device_for_enrolment(user=_staff(request))
    out = io.BytesIO()
    qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathFillImage).save(out)
    response = HttpResponse(out.getvalue(), content_type="image/svg+xml")
    response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["GET", "POST"])
def backup_codes(request: HttpRequest) -> HttpResponse:
    """Shows new backup codes once (after enrolment or when made anew)."""
    if request.method == "POST":
        user = _staff(request)
        request.session[BACKUP_CODES_SESSION_KEY] = services.backup_codes_replace(user=user)
        audit_two_factor(
            request=request,
            user=user,
            action=AuditAction.TWO_FACTOR_ADDED,
            device=services.backup_codes_device(user),
        )
        return redirect("admin:two_factor_backup_codes")
    codes = request.session.pop(BACKUP_CODES_SESSION_KEY, None)
    if not codes:
        return redirect("admin:two_factor_manage")
    return render(
        request,
        "admin/two_factor/backup_codes.html",
        _context(request, title=gettext("Your backup codes"), codes=codes, next=_next_url(request)),
    )


@require_GET
def manage(request: HttpRequest) -> HttpResponse:
    user = _staff(request)
    return render(
        request,
        "admin/two_factor/manage.html",
        _context(
            request,
            title=gettext("Two-factor authentication"),
            factors=services.factors_of(user),
            backup_codes_left=services.backup_codes_left(user),
            can_type_code=bool(services.code_devices(user)),
            may_add=may_add_factor(request),
            required=settings.REQUIRE_2FA,
        ),
    )


@require_http_methods(["GET", "POST"])
def remove_factor(request: HttpRequest, device_id: str) -> HttpResponse:
    """Removing an app or passkey asks for a current code (app or backup code) first."""
    user = _staff(request)
    device = services.factor_by_id(user, device_id)
    if device is None:
        messages.error(request, gettext("That second factor does not exist."))
        return redirect("admin:two_factor_manage")
    form = CodeForm(user, request.POST or None)
    if request.method == "POST" and not form.is_valid():
        audit_two_factor(request=request, user=user, action=AuditAction.TWO_FACTOR_FAILED)
    if request.method == "POST" and form.is_valid():
        try:
            services.factor_remove(user=user, device=device)
        except services.LastFactor:
            messages.error(
                request,
                gettext(
                    "Two-factor authentication is required: add another app or passkey before "
                    "removing the last one."
                ),
            )
            return redirect("admin:two_factor_manage")
        audit_two_factor(
            request=request, user=user, action=AuditAction.TWO_FACTOR_REMOVED, device=device
        )
        verified = form.verified_device
        assert verified is not None  # a valid form checked its code on one of the devices
        if verified.persistent_id != device.persistent_id:
            otp_login(request, verified)
        messages.success(request, gettext("“%(name)s” is removed.") % {"name": device.name})
        return redirect("admin:two_factor_manage")
    return render(
        request,
        "admin/two_factor/remove.html",
        _context(
            request,
            title=gettext("Remove “%(name)s”") % {"name": device.name},
            form=form,
            device=device,
        ),
    )

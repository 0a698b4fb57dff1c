"""Passkeys (django-otp-webauthn) as a second factor of staff accounts.

The relying party is the host the admin is reached at (validated against ALLOWED_HOSTS by
`get_host()`), unless WEBAUTHN_RP_ID names a parent domain; the allowed origin is the
admin's own scheme and host unless WEBAUTHN_ORIGINS lists them. WebAuthn needs a domain
name: http://localhost works, http://127.0.0.1 does not.
"""

import json

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import User
from django.http import HttpRequest
from django.urls import path
from django.views.i18n import JavaScriptCatalog
from django_otp_webauthn import exceptions
from django_otp_webauthn import views as webauthn_views
from django_otp_webauthn.helpers import WebAuthnHelper
from django_otp_webauthn.models import WebAuthnCredential

from statuspage.audit import audit_two_factor
from statuspage.models import AuditAction


def relying_party_id(request: HttpRequest) -> str:
    if settings.OTP_WEBAUTHN_RP_ID:
        return settings.OTP_WEBAUTHN_RP_ID
    host = request.get_host()
    return host.rsplit(":", 1)[0] if not host.endswith("]") else host


class PasskeyHelper(WebAuthnHelper):
    def get_allowed_origins(self) -> list[str]:
        origins = settings.OTP_WEBAUTHN_ALLOWED_ORIGINS
        return list(origins) or [f"{self.request.scheme}://{self.request.get_host()}"]


class StaffOnly:
    """Ceremonies only for staff signed in by password. Registering a passkey needs a session
    the admin lets in (from the two-factor page), so the password alone never adds one."""

    request: HttpRequest  # set by the view it is mixed into

    def get_user(self) -> User | None:
        user = self.request.user
        return user if user.is_authenticated and user.is_active and user.is_staff else None


class BeginRegistration(StaffOnly, webauthn_views.BeginCredentialRegistrationView):
    def check_can_register(self):
        if not admin.site.has_permission(self.request):
            raise exceptions.NotVerified()


class CompleteRegistration(StaffOnly, webauthn_views.CompleteCredentialRegistrationView):
    check_can_register = BeginRegistration.check_can_register

    def post(self, *args, **kwargs):
        response = super().post(*args, **kwargs)
        passkey = WebAuthnCredential.objects.filter(pk=json.loads(response.content)["id"]).first()
        audit_two_factor(
            request=self.request,
            user=self.request.user,
            action=AuditAction.TWO_FACTOR_ADDED,
            device=passkey,
        )
        return response


class BeginAuthentication(StaffOnly, webauthn_views.BeginCredentialAuthenticationView):
    def check_can_authenticate(self):
        if self.get_user() is None:
            raise exceptions.NotAuthenticated()


class CompleteAuthentication(StaffOnly, webauthn_views.CompleteCredentialAuthenticationView):
    check_can_authenticate = BeginAuthentication.check_can_authenticate

    def complete_auth(self, device):
        super().complete_auth(device)
        audit_two_factor(
            request=self.request,
            user=self.request.user,
            action=AuditAction.TWO_FACTOR_VERIFIED,
            device=device,
        )


# Included with the namespace "otp_webauthn", which the package's template tags reverse.
urlpatterns = [
    path("registration/begin/", BeginRegistration.as_view(), name="credential-registration-begin"),
    path(
        "registration/complete/",
        CompleteRegistration.as_view(),
        name="credential-registration-complete",
    ),
    path(
        "authentication/begin/",
        BeginAuthentication.as_view(),
        name="credential-authentication-begin",
    ),
    path(
        "authentication/complete/",
        CompleteAuthentication.as_view(),
        name="credential-authentication-complete",
    ),
    path(
        "jsi18n/",
        JavaScriptCatalog.as_view(packages=["django_otp_webauthn"]),
        name="js-i18n-catalog",
    ),
]

"""Second factors of staff accounts: django-otp devices (authenticator apps, backup codes)
and django-otp-webauthn passkeys. Which factors a user has, enrolment, and replacing codes."""

import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential

BACKUP_CODE_COUNT = 10
BACKUP_DEVICE_NAME = "Backup codes"
APP_DEVICE_NAME = "Authenticator app"
# Backup codes: 10 characters from an alphabet without look-alikes (0/O, 1/l/I): 48 bits.
BACKUP_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
BACKUP_CODE_LENGTH = 10


def has_second_factor(user: AbstractBaseUser) -> bool:
    """Whether the user has a confirmed factor to sign in with (backup codes alone do not
    count: they are for when the app or passkey is lost)."""
    # bool(): django-otp and django-otp-webauthn have no type hints (their answers are Any).
    return bool(
        TOTPDevice.objects.filter(user=user, confirmed=True).exists()
        or WebAuthnCredential.objects.filter(user=user, confirmed=True).exists()
    )


def second_factor_owed(user: AbstractBaseUser) -> bool:
    """Staff owe a second factor when REQUIRE_2FA is on, and always once they have one."""
    return settings.REQUIRE_2FA or has_second_factor(user)


def is_verified(user: AbstractBaseUser) -> bool:
    """Whether this request's session passed a second factor (OTPMiddleware sets it; a user
    object just signed in by password has no `is_verified` yet)."""
    check = getattr(user, "is_verified", None)
    return bool(check and check())


def second_factor_passed(user: AbstractBaseUser) -> bool:
    """Whether the user's session may go on: verified by a second factor, or owing none."""
    return is_verified(user) or not second_factor_owed(user)


def code_devices(user: AbstractBaseUser) -> list[Device]:
    """The user's confirmed devices that take a typed code: apps first, then backup codes."""
    apps = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk")
    backup = StaticDevice.objects.filter(user=user, confirmed=True, name=BACKUP_DEVICE_NAME)
    return [*apps, *backup]


def totp_device_for_enrolment(*, user: AbstractBaseUser) -> TOTPDevice:
    """The user's unconfirmed authenticator-app device, made on first ask and kept until it
    is confirmed, so reloading the page shows the same QR code."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=APP_DEVICE_NAME, confirmed=False)
    return device


@transaction.atomic
def totp_confirm(*, device: TOTPDevice) -> list[str]:
    """Confirm a new authenticator app once a code from it was right. Returns fresh backup
    codes when the user had none (first enrolment), [] when they keep theirs."""
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user=device.user, confirmed=False).delete()
    if StaticDevice.objects.filter(user=device.user, name=BACKUP_DEVICE_NAME).exists():
        return []
    return backup_codes_replace(user=device.user)


@transaction.atomic
def backup_codes_replace(*, user: AbstractBaseUser) -> list[str]:
    """New single-use backup codes; the old ones stop working."""
    device, _ = StaticDevice.objects.get_or_create(
        user=user, name=BACKUP_DEVICE_NAME, defaults={"confirmed": True}
    )
    device.token_set.all().delete()
    codes = [
        "".join(secrets.choice(BACKUP_CODE_ALPHABET) for _ in range(BACKUP_CODE_LENGTH))
        for _ in range(BACKUP_CODE_COUNT)
    ]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def backup_codes_device(user: AbstractBaseUser) -> StaticDevice | None:
    return StaticDevice.objects.filter(user=user, name=BACKUP_DEVICE_NAME).first()


def backup_codes_left(user: AbstractBaseUser) -> int:
    left: int = StaticToken.objects.filter(
        device__user=user, device__name=BACKUP_DEVICE_NAME, device__confirmed=True
    ).count()
    return left


def factors_of(user: AbstractBaseUser) -> list[Device]:
    """Authenticator apps and passkeys the user can remove, oldest first."""
    apps = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk")
    passkeys = WebAuthnCredential.objects.filter(user=user, confirmed=True).order_by("pk")
    return [*apps, *passkeys]


def factor_by_id(user: AbstractBaseUser, persistent_id: str) -> Device | None:
    """One of the user's own factors, or None (another user's id is not found either)."""
    return next((d for d in factors_of(user) if d.persistent_id == persistent_id), None)


class LastFactor(Exception):
    """Removing it would leave a required second factor with nothing to sign in with."""


@transaction.atomic
def factor_remove(*, user: AbstractBaseUser, device: Device) -> None:
    """Remove an app or passkey. The last one goes only when 2FA is not required; backup
    codes go with it then (they alone are no way to sign in for long)."""
    remaining = [d for d in factors_of(user) if d.persistent_id != device.persistent_id]
    if not remaining and settings.REQUIRE_2FA:
        raise LastFactor
    device.delete()
    if not remaining:
        StaticDevice.objects.filter(user=user).delete()

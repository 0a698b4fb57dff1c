"""The code forms of the second step: a code from an authenticator app or a backup code."""

from django import forms
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django_otp.models import Device, VerifyNotAllowed
from django_otp.plugins.otp_static.models import StaticDevice

from statuspage.staff_auth.services import code_devices


class CodeForm(forms.Form):
    """A code from one of the user's devices. Each device counts its own wrong codes and
    makes the next try wait longer (1 s, 2 s, 4 s …: OTP_*_THROTTLE_FACTOR)."""

    device = forms.ChoiceField(label="Code from")
    code = forms.CharField(
        label="Code",
        max_length=32,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false"}
        ),
    )

    def __init__(self, user: AbstractBaseUser, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.devices = {device.persistent_id: device for device in code_devices(user)}
        device_field = self.fields["device"]
        assert isinstance(device_field, forms.ChoiceField)  # declared above
        device_field.choices = [
            (key, "a backup code" if isinstance(device, StaticDevice) else device.name)
            for key, device in self.devices.items()
        ]
        self.verified_device: Device | None = None

    def clean(self):
        cleaned = super().clean()
        assert cleaned is not None  # Form.clean() gives cleaned_data
        device = self.devices.get(cleaned.get("device", ""))
        code = "".join((cleaned.get("code") or "").split())
        if device is None or not code:
            return cleaned
        check_code(device, code)
        self.verified_device = device
        return cleaned


def check_code(device: Device, code: str) -> None:
    """Raises a form error unless the code is right for the device and may be tried now."""
    with transaction.atomic():
        # Locked, so two requests with one code cannot both use it (TOTP `last_t`, a backup
        # code's row); wrong codes are counted as the block commits.
        device = type(device).objects.select_for_update().get(pk=device.pk)
        allowed, extra = device.verify_is_allowed()
        matched = allowed and device.verify_token(code.lower())
    if not allowed:
        raise forms.ValidationError(_throttled_message(extra or {}), code="throttled")
    if not matched:
        raise forms.ValidationError(
            "That code is not right, or it was used already. Try the next code.",
            code="invalid",
        )


def _throttled_message(extra: dict) -> str:
    if extra.get("reason") == VerifyNotAllowed.N_FAILED_ATTEMPTS and extra.get("locked_until"):
        wait = max(1, int((extra["locked_until"] - timezone.now()).total_seconds()) + 1)
        return (
            f"Too many wrong codes ({extra['failure_count']}): "
            f"wait {wait} second{'s' if wait != 1 else ''} and try again."
        )
    return "Codes from this device cannot be checked right now: try again shortly."


class ConfirmAppForm(forms.Form):
    """The first code from a new authenticator app, which proves it was set up right."""

    code = forms.CharField(
        label="Code shown by the app",
        max_length=12,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )

    def __init__(self, device: Device, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.device = device

    def clean_code(self):
        code = "".join(self.cleaned_data["code"].split())
        check_code(self.device, code)
        return code

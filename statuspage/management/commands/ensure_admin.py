"""Create the first admin account on a fresh install and print how to sign in.

The generated password is kept in var/admin-password, so every run prints the same login.
"""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from statuspage.staff_auth.services import has_second_factor

USERNAME = "admin"


class Command(BaseCommand):
    help = (
        f'Create a superuser "{USERNAME}" with a generated password (kept in '
        "var/admin-password) unless it exists, and print the login."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        path = settings.VAR_DIR / "admin-password"
        user = User.objects.filter(username=USERNAME).first()
        if user is None:
            if User.objects.filter(is_superuser=True).exists():
                self.stdout.write("An admin account already exists: not creating another.")
                return
            password = path.read_text().strip() if path.exists() else ""
            if not password:
                password = secrets.token_urlsafe(12)
                path.write_text(password + "\n")
                path.chmod(0o600)
            try:  # a password written into the file by hand must pass the validators too
                validate_password(password, User(username=USERNAME))
            except ValidationError as error:
                raise CommandError(
                    f"The password in {path} is refused: {' '.join(error.messages)}"
                ) from error
            user = User.objects.create_superuser(username=USERNAME, email="", password=password)
        elif not path.exists():
            self.stdout.write(f'Admin login: username "{USERNAME}" (password set by you).')
            return
        else:
            password = path.read_text().strip()
            if not user.check_password(password):
                self.stdout.write(
                    f'Admin login: username "{USERNAME}"; its password was changed since it '
                    f"was generated into {path}."
                )
                return
        self.stdout.write(
            f"Admin login: username {USERNAME}  password {password}{_enrol_hint(user)}"
        )


def _enrol_hint(user) -> str:
    """Said at `make run`: the first sign-in asks for an authenticator app (REQUIRE_2FA)."""
    if not settings.REQUIRE_2FA or has_second_factor(user):
        return ""
    return "  (first sign-in: set up two-factor authentication with an authenticator app)"

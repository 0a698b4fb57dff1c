from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django_otp.plugins.otp_totp.models import TOTPDevice

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path


def ensure_admin() -> str:
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    return out.getvalue()


def test_it_creates_a_superuser_once_and_prints_the_same_password(tmp_path):
    first = ensure_admin()
    second = ensure_admin()

    password = (tmp_path / "admin-password").read_text().strip()
    assert (
        first
        == second
        == (
            f"Admin login: username admin  password {password}"
            "  (first sign-in: set up two-factor authentication with an authenticator app)\n"
        )
    )
    [admin] = User.objects.all()
    assert admin.username == "admin"
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password(password)


def test_the_password_file_is_private(tmp_path):
    ensure_admin()

    assert (tmp_path / "admin-password").stat().st_mode & 0o777 == 0o600


def test_it_recreates_a_deleted_admin_with_the_kept_password(tmp_path):
    printed = ensure_admin()
    User.objects.all().delete()

    assert ensure_admin() == printed
    assert User.objects.get().check_password((tmp_path / "admin-password").read_text().strip())


def test_it_does_not_print_a_password_that_was_changed():
    ensure_admin()
    admin = User.objects.get()
    admin.set_password("a new secret phrase")
    admin.save()

    printed = ensure_admin()

    assert "was changed" in printed
    assert "a new secret phrase" not in printed


def test_it_leaves_an_existing_superuser_alone():
    User.objects.create_superuser("ops", "", "correct horse battery")

    assert "already exists" in ensure_admin()
    assert list(User.objects.values_list("username", flat=True)) == ["ops"]


def test_the_login_line_stops_asking_to_enrol_once_the_admin_has_an_app(tmp_path):
    ensure_admin()
    TOTPDevice.objects.create(user=User.objects.get(), name="Phone")

    password = (tmp_path / "admin-password").read_text().strip()
    assert ensure_admin() == f"Admin login: username admin  password {password}\n"


def test_the_login_line_does_not_ask_to_enrol_when_two_factor_is_off(tmp_path, settings):
    settings.REQUIRE_2FA = False

    password_line = ensure_admin()

    assert "two-factor" not in password_line


@pytest.mark.parametrize("weak", ["admin", "password", "12345678901", "short"])
def test_a_weak_password_written_into_the_file_is_refused(tmp_path, weak):
    (tmp_path / "admin-password").write_text(weak + "\n")

    with pytest.raises(CommandError, match="is refused"):
        ensure_admin()

    assert not User.objects.exists()

"""Staff sign-in holds against password guessing (django-axes, statuspage/access.py): a
username or an address that fails too often is refused, the right password included, until
the cool-off ends; the address counts X-Forwarded-For only through TRUSTED_PROXY_HOPS."""

import time
from datetime import timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from statuspage.models import AuditAction, AuditEvent
from tests.incidents.factories import StaffFactory, sign_in_staff

LOGIN = "/admin/login/"
PASSWORD = "correct horse battery staple"
WRONG = "Tr0ub4dor&3-guess"
LIMIT = 10

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    settings.BEACON_TRUSTED_PROXY_HOPS = 0
    # Staff are told by tasks: run them here rather than leave messages in the test broker.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # Hundreds of sign-ins: a fast hasher (the default one is slow on purpose).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def staff():
    user = StaffFactory(username="dana", email="dana@example.test", groups=["Admins"])
    user.set_password(PASSWORD)
    user.save()
    return user


def sign_in(client, username, password, address="203.0.113.5", forwarded=None):
    extra = {"REMOTE_ADDR": address}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return client.post(
        LOGIN, {"username": username, "password": password, "next": "/admin/"}, **extra
    )


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def assert_locked(response):
    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    assert int(response["Retry-After"]) == 15 * 60


def test_a_wrong_password_shows_the_admin_form_error(client, staff):
    response = sign_in(client, "dana", WRONG)

    assert response.status_code == 200
    assert b"Please enter the correct username and password" in response.content
    assert not signed_in(client)


def test_120_wrong_passwords_from_one_address_end_in_lock_out_and_the_right_one_is_refused(
    client, staff
):
    statuses = [sign_in(client, "dana", WRONG).status_code for _ in range(120)]

    assert statuses[: LIMIT - 1] == [200] * (LIMIT - 1)
    assert set(statuses[LIMIT - 1 :]) == {429}
    assert_locked(sign_in(client, "dana", PASSWORD))
    assert not signed_in(client)


def test_the_locked_account_is_refused_from_any_other_address_too(client, staff):
    for _ in range(LIMIT):
        sign_in(client, "dana", WRONG, address="203.0.113.5")

    assert_locked(sign_in(client, "dana", PASSWORD, address="192.0.2.77"))
    assert not signed_in(client)


def test_one_address_spraying_many_usernames_is_locked_out(client, staff):
    for n in range(LIMIT):
        sign_in(client, f"guess{n}", WRONG, address="203.0.113.9")

    # dana's own password from the spraying address is refused, from elsewhere it works.
    assert_locked(sign_in(client, "dana", PASSWORD, address="203.0.113.9"))
    assert sign_in(client, "dana", PASSWORD, address="192.0.2.10").status_code == 302
    assert signed_in(client)


def test_rotating_addresses_behind_one_trusted_proxy_lock_the_account(client, staff, settings):
    settings.BEACON_TRUSTED_PROXY_HOPS = 1
    statuses = [
        sign_in(client, "dana", WRONG, address="10.0.0.2", forwarded=f"198.51.100.{n}").status_code
        for n in range(1, 21)
    ]

    assert 429 in statuses
    assert_locked(sign_in(client, "dana", PASSWORD, address="10.0.0.2", forwarded="192.0.2.1"))
    failed = AuditEvent.objects.filter(action=AuditAction.SIGN_IN_FAILED).order_by("id")
    assert [event.ip_address for event in failed[:3]] == [
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.3",
    ]


@pytest.mark.parametrize(
    "forged",
    [
        lambda n: f"192.0.2.{n}",  # a fresh address each time
        lambda n: f"192.0.2.{n}, 10.0.0.{n}",  # a chain of them
        lambda n: "127.0.0.1",  # pretending to be local
        lambda n: "",  # an empty header
        lambda n: "not an address",
    ],
)
def test_a_forged_forwarded_header_from_a_direct_client_does_not_move_the_key(
    client, staff, forged
):
    # No proxy in front (TRUSTED_PROXY_HOPS=0): the header is the attacker's own words.
    for n in range(LIMIT):
        sign_in(client, f"guess{n}", WRONG, address="203.0.113.9", forwarded=forged(n))

    assert_locked(sign_in(client, "dana", PASSWORD, address="203.0.113.9", forwarded=forged(99)))
    addresses = set(
        AuditEvent.objects.filter(action=AuditAction.SIGN_IN_FAILED).values_list(
            "ip_address", flat=True
        )
    )
    assert addresses == {"203.0.113.9"}


def test_entries_an_attacker_prepends_before_the_trusted_proxy_are_ignored(client, staff, settings):
    settings.BEACON_TRUSTED_PROXY_HOPS = 1
    for n in range(LIMIT):
        # The proxy appends the address it saw last; the rest is what the client sent.
        forwarded = f"192.0.2.{n}, 10.9.9.{n}, 203.0.113.9"
        sign_in(client, f"guess{n}", WRONG, address="10.0.0.2", forwarded=forwarded)

    locked = sign_in(client, "dana", PASSWORD, address="10.0.0.2", forwarded="1.1.1.1, 203.0.113.9")
    assert_locked(locked)
    # Another visitor behind the same proxy is not locked out.
    assert (
        sign_in(client, "dana", PASSWORD, address="10.0.0.2", forwarded="198.51.100.4").status_code
        == 302
    )


def test_the_lock_out_page_says_the_same_whether_the_username_exists_or_not(client, staff):
    with time_machine.travel(timezone.now(), tick=False):
        for _ in range(LIMIT):
            sign_in(client, "dana", WRONG, address="203.0.113.5")
            sign_in(client, "nobody-by-this-name", WRONG, address="198.51.100.5")
        real = sign_in(client, "dana", PASSWORD, address="203.0.113.5")
        unknown = sign_in(client, "nobody-by-this-name", PASSWORD, address="198.51.100.5")

    assert_locked(real)
    assert_locked(unknown)
    assert real.content == unknown.content
    assert b"dana" not in real.content


def test_staff_are_told_once_per_lock_out_without_the_password(
    client, staff, django_capture_on_commit_callbacks
):
    StaffFactory(username="lee", email="lee@example.test", groups=["Admins"])
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(40):
            sign_in(client, "dana", WRONG)
        sign_in(client, "dana", PASSWORD)

    assert len(mail.outbox) == 1
    [message] = mail.outbox
    assert message.to == ["dana@example.test"]
    assert message.cc == ["lee@example.test"]
    assert "dana" in message.subject
    assert "203.0.113.5" in message.body
    for secret in (WRONG, PASSWORD):
        assert secret not in message.subject + message.body
    assert AuditEvent.objects.filter(action=AuditAction.LOCKED_OUT).count() == 1


def test_a_lock_out_on_an_unknown_username_tells_staff_only(
    client, staff, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(LIMIT + 3):
            sign_in(client, "mallory-guess", WRONG)

    [message] = mail.outbox
    assert message.to == ["dana@example.test"]
    assert message.cc == []


def test_a_new_lock_out_after_the_cool_off_is_told_again(
    client, staff, settings, django_capture_on_commit_callbacks
):
    # Real time, not a time machine: the mark that staff were told lives in Redis, whose
    # clock no test can move.
    settings.AXES_COOLOFF_TIME = timedelta(seconds=2)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(LIMIT + 2):
            sign_in(client, "dana", WRONG)
    assert len(mail.outbox) == 1
    time.sleep(2.2)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(LIMIT + 2):
            sign_in(client, "dana", WRONG)

    assert len(mail.outbox) == 2


def test_the_right_password_works_again_after_the_cool_off(client, staff):
    for _ in range(LIMIT):
        sign_in(client, "dana", WRONG)
    with time_machine.travel(timezone.now() + timedelta(minutes=14)):
        assert_locked(sign_in(client, "dana", PASSWORD))

    # Each refused attempt started the cool-off again: 15 minutes after the last one.
    with time_machine.travel(timezone.now() + timedelta(minutes=14 + 16)):
        assert sign_in(client, "dana", PASSWORD).status_code == 302
        assert signed_in(client)


def test_a_successful_sign_in_resets_the_failures(client, staff):
    for _ in range(LIMIT - 1):
        sign_in(client, "dana", WRONG)
    assert sign_in(client, "dana", PASSWORD).status_code == 302
    client.logout()

    statuses = [sign_in(client, "dana", WRONG).status_code for _ in range(LIMIT - 1)]

    assert statuses == [200] * (LIMIT - 1)
    assert sign_in(client, "dana", PASSWORD).status_code == 302


def test_an_admin_cannot_give_a_staff_member_a_weak_password(client, staff):
    sign_in_staff(client, User.objects.create_superuser("root", password=PASSWORD))
    for weak in ["password", "12345678901", "dana1", "dana-rdana"]:
        response = client.post(
            "/admin/auth/user/add/",
            {"username": "dana-r", "usable_password": "true", "password1": weak, "password2": weak},
        )
        assert response.status_code == 200, weak
        assert response.context["adminform"].form.errors.get("password2"), weak
    assert not User.objects.filter(username="dana-r").exists()


def test_changing_a_staff_password_in_the_admin_applies_the_validators(client, staff):
    sign_in_staff(client, User.objects.create_superuser("root", password=PASSWORD))

    response = client.post(
        f"/admin/auth/user/{staff.pk}/password/",
        {"password1": "qwerty123", "password2": "qwerty123"},
    )

    assert response.status_code == 200
    staff.refresh_from_db()
    assert staff.check_password(PASSWORD)


def test_an_admin_lifts_a_lock_out_by_deleting_the_access_attempts(client, staff):
    for _ in range(LIMIT):
        sign_in(client, "dana", WRONG)
    lifter = Client()
    sign_in_staff(lifter, StaffFactory(groups=["Admins"]))
    attempts = AccessAttempt.objects.filter(username="dana")

    response = lifter.post(
        reverse("admin:axes_accessattempt_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": list(attempts.values_list("pk", flat=True)),
            "post": "yes",
        },
    )

    assert response.status_code == 302
    assert sign_in(client, "dana", PASSWORD).status_code == 302


def test_responders_cannot_see_or_lift_lock_outs(client):
    sign_in_staff(client, StaffFactory(groups=["Responders"]))

    assert client.get(reverse("admin:axes_accessattempt_changelist")).status_code == 403


@pytest.mark.parametrize("username", ["dana\x00", "", "   "])
def test_usernames_the_form_refuses_are_a_form_error_never_a_500(client, staff, username):
    for _ in range(LIMIT + 1):
        response = sign_in(client, username, WRONG)
        assert response.status_code == 200
        assert response.context["form"].errors

    # No password was checked, so nothing was guessed and nothing is counted.
    assert sign_in(client, "dana", PASSWORD).status_code == 302


@pytest.mark.parametrize(
    "username",
    ["x" * 5000, "dana\r\nBcc: all@example.test", "ümlaut-ñame", "' OR 1=1 --", "DANA", " dana"],
)
def test_odd_usernames_are_counted_like_any_other(client, staff, username):
    statuses = [sign_in(client, username, WRONG).status_code for _ in range(LIMIT + 1)]

    assert statuses == [200] * (LIMIT - 1) + [429, 429]
    assert not signed_in(client)
    # They counted against the address: the right password from it is refused.
    assert_locked(sign_in(client, "dana", PASSWORD))


@pytest.mark.parametrize("forwarded", ["not an address", "1.2.3.4:5678", "", "[::1]", "999.1.1.1"])
def test_what_a_misconfigured_proxy_chain_passes_for_an_address_is_never_a_500(
    client, staff, settings, forwarded
):
    # Two hops trusted, one proxy really there: the client writes the entry that is read.
    settings.BEACON_TRUSTED_PROXY_HOPS = 2
    statuses = [
        sign_in(
            client, f"guess{n}", WRONG, address="10.0.0.2", forwarded=f"{forwarded}, 10.0.0.2"
        ).status_code
        for n in range(LIMIT + 1)
    ]

    assert statuses == [200] * (LIMIT - 1) + [429, 429]

from argparse import ArgumentTypeError
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from statuspage.api_v1.keys import LONGEST_EXPIRY, api_key_create
from statuspage.audit import audit_record
from statuspage.models import ApiKeyScope, AuditAction, AuditSource

MAX_DAYS = LONGEST_EXPIRY.days


def _days(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_DAYS:
        raise ArgumentTypeError(f"a whole number of days from 1 to {MAX_DAYS}, not {value!r}")
    return int(value)


class Command(BaseCommand):
    help = "Create a management API key for a user and print it once (it is not kept)."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="The username the key acts as.")
        parser.add_argument("--name", default="Automation", help="What the key is for.")
        # Scripts that call this expect a key that writes, as before scopes existed.
        parser.add_argument(
            "--scope",
            choices=ApiKeyScope.values,
            default=ApiKeyScope.WRITE,
            help="`read` for a key that may only read (default: write).",
        )
        parser.add_argument(
            "--expires-in-days",
            type=_days,
            metavar="DAYS",
            help="The key stops working this many days from now (default: never).",
        )

    def handle(self, *args, user, name, scope, expires_in_days, **options):
        owner = get_user_model().objects.filter(username=user).first()
        if owner is None:
            raise CommandError(f"No user named {user!r}.")
        if not owner.is_active:
            raise CommandError(f"{user} is not active: a key would not work.")
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        key, raw = api_key_create(owner=owner, name=name, scope=scope, expires_at=expires_at)
        # Whoever ran the command is not known here: the trail says it was the command line.
        audit_record(
            actor=None,
            action=AuditAction.API_KEY_CREATED,
            source=AuditSource.COMMAND,
            target=key,
            detail={"owner": owner.get_username()},
        )
        until = f", expiring {expires_at:%Y-%m-%d %H:%M %Z}" if expires_at else ""
        self.stderr.write(
            f"Created “{key.name}” ({key.get_scope_display().lower()}{until}) for {user}. "
            "Keep it now: it is not shown again."
        )
        self.stdout.write(raw)

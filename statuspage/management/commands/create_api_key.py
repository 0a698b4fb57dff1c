from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from statuspage.api_keys import api_key_create
from statuspage.audit import audit_record
from statuspage.models import AuditAction, AuditSource


class Command(BaseCommand):
    help = "Create a management API key for a user and print it once (it is not kept)."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="The username the key acts as.")
        parser.add_argument("--name", default="Automation", help="What the key is for.")

    def handle(self, *args, user, name, **options):
        owner = get_user_model().objects.filter(username=user).first()
        if owner is None:
            raise CommandError(f"No user named {user!r}.")
        if not owner.is_active:
            raise CommandError(f"{user} is not active: a key would not work.")
        key, raw = api_key_create(owner=owner, name=name)
        # Whoever ran the command is not known here: the trail says it was the command line.
        audit_record(
            actor=None,
            action=AuditAction.API_KEY_CREATED,
            source=AuditSource.COMMAND,
            target=key,
            detail={"owner": owner.get_username()},
        )
        self.stderr.write(f"Created “{key.name}” for {user}. Keep it now: it is not shown again.")
        self.stdout.write(raw)

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from statuspage.api_keys import api_key_create


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
        self.stderr.write(f"Created “{key.name}” for {user}. Keep it now: it is not shown again.")
        self.stdout.write(raw)

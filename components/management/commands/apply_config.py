"""`manage.py apply_config beacon.yaml`: the status page's structure, declared in a file."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from components import config
from statuspage.models import PageSettings


class Command(BaseCommand):
    help = (
        "Create and update the groups, components and health checks a YAML file declares "
        "(see docs/health-checks.md). Nothing is written while the file has an error."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="The file, e.g. beacon.yaml.")
        parser.add_argument(
            "--prune",
            action="store_true",
            help="Also delete what an earlier run of the file made but it no longer declares.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Print the plan and write nothing."
        )

    def handle(self, *args, path: str, prune: bool, dry_run: bool, **options):
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise CommandError(f"{path}: {error.strerror or error}") from None
        except UnicodeDecodeError:
            raise CommandError(f"{path}: not UTF-8 text") from None
        try:
            plan = config.apply_config(text, source=path, prune=prune, dry_run=dry_run)
        except config.ConfigError as error:
            for line in error.lines():
                self.stderr.write(line)
            count = len(error.problems)
            raise CommandError(
                f"{count} error{'s' if count != 1 else ''} in {path}; nothing was written."
            ) from None
        # New heartbeats' ping URLs, under the page's public URL when it is set.
        self.stdout.write(plan.describe(done=not dry_run, ping_base=PageSettings.load().url))

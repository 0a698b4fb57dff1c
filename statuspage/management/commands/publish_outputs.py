"""Publish every public output to the bucket now, and purge the CDN (docs/deployment.md).

The worker does this after each change when OBJECT_STORAGE_BUCKET is set; this command is for
the first upload, after changing the bucket or prefix, for uploading every output again
(`--force`: after the headers changed, or objects were edited by hand) and for purging
everything on demand.
"""

from django.core.management.base import BaseCommand, CommandError

from statuspage.public import cdn, publish


class Command(BaseCommand):
    help = "Publish every public output to OBJECT_STORAGE_BUCKET and purge the CDN."

    def add_arguments(self, parser):
        parser.add_argument(
            "--purge-all",
            action="store_true",
            help="Purge every output's URL at the CDN, not only those that changed.",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Upload every output, also those whose object already has the same body "
            "(for changed headers, or objects edited in the bucket), and purge them all.",
        )
        parser.add_argument(
            "--no-upload",
            action="store_true",
            help="Only purge (with --purge-all: every output's URL).",
        )

    def handle(self, *args, purge_all, force, no_upload, **options):
        if force and no_upload:
            raise CommandError("--force uploads every output; --no-upload uploads none.")
        if not no_upload and not publish.bucket_enabled():
            raise CommandError("OBJECT_STORAGE_BUCKET is not set: there is nowhere to publish.")
        try:
            changed: list[str] = []
            if not no_upload:
                result = publish.publish_site_to_bucket(force=force)
                changed = result.changed
                self.stdout.write(
                    f"{len(result.written)} written, {result.unchanged} unchanged, "
                    f"{len(result.deleted)} deleted."
                )
            if purge_all:
                outputs, _ = publish.site_outputs()
                changed = [output.path for output in outputs]
            urls = publish.purge_urls(changed)
            cdn.purge(urls)
        except (publish.PublishFailed, cdn.PurgeFailed) as error:
            raise CommandError(str(error)) from error
        if cdn.enabled():
            self.stdout.write(f"Purged {len(urls)} URLs.")

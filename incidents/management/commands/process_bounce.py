"""Read one bounce (an RFC 3464 delivery status notification) from standard input and
suppress the addresses it reports as failed for good. For a mail server's pipe, e.g. a
Postfix alias: `bounces: "|/srv/beacon/.venv/bin/python /srv/beacon/manage.py process_bounce"`.

It exits 0 for anything it could read, a DSN or not, so the mail server never bounces the
bounce; what it did goes to standard error.
"""

import sys

from django.core.management.base import BaseCommand

from incidents.notify import bounces, subscriptions

MAX_MESSAGE_BYTES = 10_000_000


class Command(BaseCommand):
    help = "Suppress the hard-bounced addresses of one DSN read from standard input."

    def handle(self, *args, **options):
        raw = sys.stdin.buffer.read(MAX_MESSAGE_BYTES + 1)
        if len(raw) > MAX_MESSAGE_BYTES:
            self.stderr.write(f"Ignored: the message is over {MAX_MESSAGE_BYTES} bytes.")
            return
        try:
            found = bounces.dsn_bounces(raw)
        except bounces.BadReport as error:
            self.stderr.write(f"Ignored: {error}")
            return
        suppressed = sum(
            subscriptions.subscriber_suppress_bounced(email=bounce.email, reason=bounce.reason)
            for bounce in found
        )
        self.stderr.write(
            f"{len(found)} permanent failure(s) reported, {suppressed} subscriber(s) suppressed."
        )

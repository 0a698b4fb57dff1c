"""Keep this web host's snapshot directory in step with the shared store (one per web host).

Run it next to the web server on every web host when there are several: it listens for
"snapshot changed" on Redis and writes each new snapshot to this host's SNAPSHOT_DIR (the
entries and the files tree nginx serves), catching up after a restart or a lost connection.
The logic is statuspage.public.snapshots.follow; see docs/deployment.md, "Several web hosts".
"""

import signal
import threading
from types import FrameType

from django.core.management.base import BaseCommand, CommandError

from statuspage.public.snapshots.follow import Follower, FollowerUnavailable


class Command(BaseCommand):
    help = "Copy snapshots announced on Redis to this host's SNAPSHOT_DIR until stopped."

    def handle(self, *args: object, **options: object) -> None:
        stop = threading.Event()

        def stop_following(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, stop_following)
        signal.signal(signal.SIGINT, stop_following)
        try:
            Follower(stop=stop).run()
        except FollowerUnavailable as error:
            raise CommandError(str(error)) from error

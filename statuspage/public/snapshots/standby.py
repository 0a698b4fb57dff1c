"""A standby region: web hosts whose database is a streaming replica of the primary region's.

Such a host sees nothing of the primary region but its database: no Redis announcements, no
worker. The probe that checks the database every few seconds (outage.py) asks it what it is:

- a **standby still receiving from its primary**: pages are current. The primary notes every
  public change in the database (`keys.note_change_in_database`); once the replica has
  replayed it, this region adopts that generation, so its pages are rebuilt from the replica
  and carry the primary's Last-Modified. Writes are refused (a 503 saying why, views.py).
- a **standby that lost its primary** (the primary region is down): pages keep the state
  they last showed and say since when, like pages of a database outage: since the last time
  this region saw the primary streaming, or the last commit it replayed, whichever is later.
- a **primary** (never a standby, or promoted): nothing to follow. A promoted standby's hosts
  notice within a probe, drop the notice, and staff can post from this region.

SQLite is never a standby.
"""

import logging
import re
import time
from dataclasses import dataclass

from django.core.cache import cache
from django.db import DatabaseError, connection

from statuspage.models import PublicChange
from statuspage.public import public_cache

logger = logging.getLogger("beacon.snapshots")

PRIMARY_SEEN_KEY = "beacon:standby:primary-seen-at"
# What public_cache makes: nanoseconds since the epoch, a dash, hex.
GENERATION_SHAPE = re.compile(r"[0-9]{1,20}-[0-9a-f]{1,32}")

# A WAL receiver's status is shown only to roles with pg_read_all_stats: for others it is
# NULL, and a receiver that exists at all is taken to be streaming (docs/deployment.md).
ROLE_SQL = """
SELECT pg_is_in_recovery(),
       EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status IS NULL OR status = 'streaming'),
       extract(epoch FROM pg_last_xact_replay_timestamp())
"""


@dataclass(frozen=True)
class DatabaseRole:
    """What the database said it is, at one probe."""

    standby: bool
    # Receiving the primary's WAL right now (always True for a primary).
    streaming: bool = True
    # When the last transaction it replayed was committed on the primary (epoch seconds).
    replayed_at: float | None = None

    @property
    def lost_primary(self) -> bool:
        return self.standby and not self.streaming


PRIMARY = DatabaseRole(standby=False)


def database_role() -> DatabaseRole:
    """One query; raises the driver's error when the database cannot be reached."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return PRIMARY
    with connection.cursor() as cursor:
        cursor.execute(ROLE_SQL)
        row = cursor.fetchone()
    if row is None or not row[0]:
        return PRIMARY
    replayed_at = None if row[2] is None else float(row[2])
    return DatabaseRole(standby=True, streaming=bool(row[1]), replayed_at=replayed_at)


def follow_primary(role: DatabaseRole) -> None:
    """On a standby: remember that the primary was seen, and adopt its last public change."""
    if role.streaming:
        try:
            cache.set(PRIMARY_SEEN_KEY, time.time(), None)
        except Exception:
            logger.debug("could not note that the primary was seen", exc_info=True)
    replicated = _replicated_generation()
    if replicated and not GENERATION_SHAPE.fullmatch(replicated):
        # Written by hand, or by something else: a token the pages could not date.
        logger.warning("standby: ignored a public change that is not a generation: %r", replicated)
        return
    if replicated and replicated != public_cache.generation():
        public_cache.adopt(replicated)
        logger.info("standby: adopted the primary's public change %s", replicated)


def _replicated_generation() -> str | None:
    try:
        return PublicChange.objects.filter(pk=1).values_list("generation", flat=True).first()
    except DatabaseError:
        # Not migrated yet (a standby made before this release's migration replayed).
        logger.debug("could not read the replicated public change", exc_info=True)
        return None


def shown_as_of(role: DatabaseRole) -> float:
    """Since when a standby that lost its primary shows the same state (epoch seconds)."""
    try:
        seen = cache.get(PRIMARY_SEEN_KEY)
    except Exception:
        seen = None
    known = [float(t) for t in (seen, role.replayed_at) if t is not None]
    return max(known) if known else time.time()

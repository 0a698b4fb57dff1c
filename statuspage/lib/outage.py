"""Telling "the database cannot be reached" apart from every other failure.

Only the first is an outage: pages keep their last snapshot and say since when they could not
be refreshed, and requests that need the database answer 503 with Retry-After. Anything else
(a bug in a template, a body the renderer chokes on) is a bug to report, never a reason to
claim the database is down. No model imports: settings' logging configuration loads this.
"""

import logging

import psycopg
from django.db import InterfaceError, OperationalError

UNREACHABLE = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)
# A DB error may come wrapped (raise … from error) by code between the driver and us.
_CHAIN_DEPTH = 5


def database_unreachable(error: BaseException | None) -> bool:
    """Whether `error` (or what caused it) says the database could not be used at all."""
    for _ in range(_CHAIN_DEPTH):
        if error is None:
            return False
        if isinstance(error, UNREACHABLE):
            return True
        error = error.__cause__ or error.__context__
    return False


# SQLSTATE 25006 read_only_sql_transaction: a write sent to a hot standby (a standby region's
# database before it is promoted), or to a session PostgreSQL was told to keep read-only.
READ_ONLY_SQLSTATE = "25006"


def database_read_only(error: BaseException | None) -> bool:
    """Whether `error` (or what caused it) is a write the database refused as read-only."""
    for _ in range(_CHAIN_DEPTH):
        if error is None:
            return False
        if getattr(error, "sqlstate", None) == READ_ONLY_SQLSTATE:
            return True
        error = error.__cause__ or error.__context__
    return False


class QuietDuringOutage(logging.Filter):
    """Drops the per-request traceback of a database outage (one line per request otherwise:
    hundreds a minute); the snapshot store (statuspage/public/snapshots/) logs one line when
    the outage starts and one when it ends."""

    def filter(self, record: logging.LogRecord) -> bool:
        # So is a write refused by a standby's database: answered 503, saying why.
        error = record.exc_info[1] if record.exc_info else None
        return not (database_unreachable(error) or database_read_only(error))

"""Render-on-write snapshots: every public output built once per change, then served as bytes.

A snapshot is the complete response for one public URL (body, gzip and brotli variants,
content type, strong ETag). Snapshots live in three places, fastest first: this process's
memory, the shared cache (Redis in production) and a copy on local disk (which nginx can
serve directly and which keeps pages up while Redis is away). Serving one touches neither
PostgreSQL nor the ORM.

Freshness follows the public generation (statuspage.public.public_cache): any change the public
can see bumps it after commit. A snapshot of an older generation is rebuilt by exactly one
process while the others keep serving the stale copy; the worker rebuilds the hot outputs right
after each change (render on write), so readers rarely build anything themselves. When the
database cannot be reached, the last snapshot keeps being served and pages say since when they
could not be refreshed.

The modules, each importing only those below it (an import-linter contract in pyproject.toml):

    serve    answering a request from a snapshot: SnapshotMiddleware and the WSGI fast path
    build    rendering an output into a snapshot; the rebuild task's body
    outage   noticing that the database is away and back; the background probe
    store    where snapshots are kept: memory, cache, disk, the files tree nginx serves
    keys     which outputs are snapshotted, under which key, and of which generation

This package module imports none of them: import the one you need.
"""

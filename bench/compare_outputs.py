"""The demo's public outputs, written to a directory, and two such directories compared.

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/beacon_compare
    export REDIS_URL=redis://127.0.0.1:6379/3
    .venv/bin/python bench/compare_outputs.py capture /tmp/outputs-before --flush
    ... change the code ...
    .venv/bin/python bench/compare_outputs.py capture /tmp/outputs-after --flush
    .venv/bin/python bench/compare_outputs.py compare /tmp/outputs-before /tmp/outputs-after

A restructuring that must not change what visitors see (issue 15) is checked with it.

`capture` migrates the database named by DATABASE_URL, empties it (`flush`: a scratch
database, hence the required --flush), seeds the demo with `manage.py seed_demo` and requests
every public output through Django's full stack (middleware, snapshots, views) with the test
client: the status page, every incident and maintenance page, every page of history, API v2,
the Atom/RSS feeds (page and per component), the maintenance calendar, the badges (page and
per component), embed.js and robots.txt, and a made-up incident code (the 404 page). Each body
is written to OUT/<path> (a query string becomes "@page=2"), and OUT/MANIFEST lists each URL
with its status, content type and the file.

Making two captures comparable:
- Time is frozen (time-machine, tick=False) at FROZEN_AT for the seeding and the requests, so
  the 90 days of history, the uptime bars and every "ago" are the same in both captures.
- Public ids (incident codes, component ids) and tokens are drawn from `secrets.choice`, which
  is swapped for a random.Random seeded with SEED; `flush` resets the row id sequences.
- Its own snapshot directory (a temporary one) and cache key prefix, and no render on write
  (no worker is asked for anything); Redis is only written under that prefix.

`compare` checks that both MANIFESTs list the same URLs with the same status and type, and
that each pair of files is byte-identical once timestamps are masked: ISO 8601 date-times
(`2026-06-15T14:30:00Z`, `…+00:00`, with fractions), RFC 2822 dates (`Mon, 15 Jun 2026
14:30:00 +0000` / `GMT`, in RSS and HTTP) and iCalendar stamps (`20260615T143000Z`) become
`<TIME>`. With time frozen they agree anyway; the mask is there so that a capture made on
another day still compares. `--strict` compares without the mask. Exit status 1 on any
difference, with the first differing line of each file.
"""

import argparse
import difflib
import os
import random
import re
import secrets
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
FROZEN_AT = datetime(2026, 6, 15, 14, 30, 0, tzinfo=UTC)
SEED = 15
BASE_URL = "http://127.0.0.1:8000"
MANIFEST = "MANIFEST"

TIMESTAMPS = [
    re.compile(rb"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"),
    re.compile(
        rb"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} "
        rb"(?:[+-]\d{4}|GMT|UTC)"
    ),
    re.compile(rb"\b\d{8}T\d{6}Z?\b"),
]


def _setup_django(snapshot_dir: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "statuspage.settings")
    os.environ["SNAPSHOT_RENDER_ON_WRITE"] = "0"
    os.environ["SNAPSHOT_DIR"] = snapshot_dir
    os.environ["CACHE_KEY_PREFIX"] = f"compare-outputs-{uuid.uuid4().hex}"
    os.environ.setdefault("STATIC_MANIFEST", "0")
    sys.path.insert(0, str(ROOT))
    import warnings

    import django

    # No collectstatic here: static files are read from the finders, as in the tests.
    warnings.filterwarnings("ignore", "No directory at", UserWarning)

    django.setup()
    import logging

    logging.disable(logging.INFO)  # one line per rebuilt snapshot otherwise
    from django.conf import settings

    settings.ALLOWED_HOSTS = ["*"]
    settings.BEACON_SNAPSHOT_GENERATION_CHECK = 0
    settings.BEACON_SNAPSHOT_SETTLE_SECONDS = 0


def _urls() -> list[str]:
    """Every public output of the seeded page, read from the database and the URLconf."""
    from django.urls import get_resolver, reverse

    from components.models import Component
    from incidents.models import Incident

    pages = ["status-page", "history", "history-atom", "history-rss", "maintenance-ics"]
    small = ["badge-svg", "badge-json", "embed-js", "robots-txt"]
    api_v2 = sorted(n for n in get_resolver().reverse_dict if str(n).startswith("api-v2-"))
    fixed = [*pages, *small, *api_v2]
    urls = [reverse(name) for name in fixed]
    history = reverse("history")
    urls += [f"{history}?page={n}" for n in range(2, 4)]
    codes = Incident.objects.order_by("started_at", "id").values_list("public_id", flat=True)
    urls += [reverse("incident-detail", args=[code]) for code in codes]
    urls.append(reverse("incident-detail", args=["zzzzzzzzzzzz"]))  # the 404 page
    for public_id in Component.objects.order_by("id").values_list("public_id", flat=True):
        for name in (
            "component-badge-svg",
            "component-badge-json",
            "component-history-atom",
            "component-history-rss",
        ):
            urls.append(reverse(name, args=[public_id]))
    return urls


def _file_name(url: str) -> str:
    path, _, query = url.partition("?")
    name = path.strip("/") or "index"
    if path.endswith("/"):
        name += "/index"
    if query:
        name += "@" + query
    return quote(name, safe="/@=")


def capture(out: Path, *, flush: bool) -> int:
    if not flush:
        sys.exit("capture empties the database named by DATABASE_URL: pass --flush to agree")
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL to a scratch PostgreSQL database (it is flushed)")
    import time_machine

    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        sys.exit(f"{out} is not empty")
    with tempfile.TemporaryDirectory(prefix="beacon-compare-") as snapshot_dir:
        _setup_django(snapshot_dir)
        from django.core.management import call_command
        from django.test import Client

        call_command("migrate", verbosity=0, interactive=False)
        call_command("flush", verbosity=0, interactive=False)
        # Public ids and tokens: the same sequence in every capture.
        secrets.choice = random.Random(SEED).choice  # type: ignore[assignment]
        with time_machine.travel(FROZEN_AT, tick=False):
            call_command("seed_demo", url=BASE_URL, stdout=open(os.devnull, "w"))  # noqa: SIM115
            client = Client(HTTP_HOST="127.0.0.1:8000")
            lines = []
            for url in _urls():
                response = client.get(url)
                body = b"".join(response) if response.streaming else response.content
                name = _file_name(url)
                target = out / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(body)
                kind = response.get("Content-Type", "-")
                lines.append(f"{url}\t{response.status_code}\t{kind}\t{name}\n")
    (out / MANIFEST).write_text("".join(sorted(lines)))
    print(f"{len(lines)} outputs written to {out}")
    return 0


def _masked(data: bytes) -> bytes:
    for pattern in TIMESTAMPS:
        data = pattern.sub(b"<TIME>", data)
    return data


def compare(before: Path, after: Path, *, strict: bool) -> int:
    manifests = [sorted((d / MANIFEST).read_text().splitlines()) for d in (before, after)]
    differences = 0
    if manifests[0] != manifests[1]:
        differences += 1
        print("MANIFEST differs (URLs, status or content type):")
        print("\n".join(difflib.unified_diff(*manifests, "before", "after", lineterm="")))
    for line in manifests[0]:
        url, name = line.split("\t")[0], line.split("\t")[3]
        a, b = before / name, after / name
        if not b.exists():
            continue  # reported with the manifest
        data_a, data_b = a.read_bytes(), b.read_bytes()
        if not strict:
            data_a, data_b = _masked(data_a), _masked(data_b)
        if data_a == data_b:
            continue
        differences += 1
        lines_a = data_a.decode(errors="replace").splitlines()
        lines_b = data_b.decode(errors="replace").splitlines()
        diff = list(difflib.unified_diff(lines_a, lines_b, "before", "after", n=0, lineterm=""))
        print(f"{url} ({name}) differs:")
        print("\n".join(diff[2:8]))
    count = len(manifests[0])
    if differences:
        print(f"{differences} difference(s) among {count} outputs")
        return 1
    print(f"{count} outputs identical{'' if strict else ' (timestamps masked)'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cap = sub.add_parser("capture", help="seed the demo and write its public outputs to OUT")
    cap.add_argument("out", type=Path)
    cap.add_argument("--flush", action="store_true", help="agree to empty DATABASE_URL")
    cmp = sub.add_parser("compare", help="compare two captures")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    cmp.add_argument("--strict", action="store_true", help="do not mask timestamps")
    args = parser.parse_args()
    if args.command == "capture":
        return capture(args.out, flush=args.flush)
    return compare(args.before, args.after, strict=args.strict)


if __name__ == "__main__":
    sys.exit(main())

"""Write a complete static copy of the public page, for a failover host (object storage, a CDN).

Every public output (every incident and every history page included) is rendered fresh from
the database, HTML links are made relative so the copy works from any prefix or from file://,
and each file gets a .gz sibling. The static assets the pages link to, the uploaded logo and a
404.html come along. See docs/deployment.md.
"""

import mimetypes
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError
from django.template.loader import render_to_string

from statuspage.models import PageSettings
from statuspage.public.publish import DirectoryTarget, Output, PublishFailed, publish
from statuspage.public.snapshots import build, keys
from statuspage.public.static_export import key_to_file, rewrite_links_for_export

NOT_FOUND_FILE = "404.html"
# Root-relative URLs in exported HTML and CSS: the assets that must travel with the copy.
_ROOT_URL = re.compile(r"""(?:\s(?:href|src)\s*=\s*["']|url\(\s*["']?)(/(?!/)[^"'()\s<>]*)""")


class Command(BaseCommand):
    help = "Write a static copy of every public page and output to DIR (the failover copy)."

    def add_arguments(self, parser):
        parser.add_argument("directory", help="Where to write the copy.")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Replace the contents of DIR when it is not empty.",
        )
        parser.add_argument(
            "--base-url",
            default="",
            help="Render as if visited at this URL (a host in ALLOWED_HOSTS). Only needed "
            "when the page has no public URL setting, which JSON and feeds link to.",
        )

    def handle(self, *args, directory, force, base_url, **options):
        target = Path(directory).resolve()
        if target.exists() and not target.is_dir():
            raise CommandError(f"{target} exists and is not a directory.")
        if target.is_dir() and any(target.iterdir()) and not force:
            raise CommandError(
                f"{target} is not empty. Use --force to replace its contents, or choose "
                "an empty directory."
            )
        base_url = base_url.rstrip("/")
        if not base_url and not PageSettings.load().url:
            self.stderr.write(
                "The page has no public URL setting, so JSON and feeds link to the host the "
                "site was last visited at. Set the URL in the admin, or pass --base-url."
            )

        started = time.monotonic()
        # Built beside the target and moved in at the end: a failed run leaves DIR as it was.
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            export = _Export(staging, base_url=base_url or None, stderr=self.stderr)
            export.run()
            _replace_contents(target, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

        written = export.target
        self.stdout.write(
            f"Exported {written.files} files ({_size(written.bytes)}, plus {written.gz_files} "
            f".gz siblings of {_size(written.gz_bytes)}) to {target} "
            f"in {time.monotonic() - started:.1f} s."
        )
        if export.skipped:
            self.stdout.write(f"Skipped {len(export.skipped)}: {', '.join(export.skipped)}")


class _Export:
    def __init__(self, root: Path, *, base_url: str | None, stderr):
        self.root = root
        self.base_url = base_url
        self.stderr = stderr
        self.target = DirectoryTarget(root)
        self.outputs: list[Output] = []
        self.skipped: list[str] = []
        self.written: set[str] = set()
        self.asset_urls: set[str] = set()

    def run(self) -> None:
        public_keys = keys.public_keys(everything=True)
        # "/history/" before "/history/?page=1": the first key for a file wins.
        for key in sorted(public_keys, key=lambda k: ("?" in k, k)):
            self.export_key(key)
        self.export_not_found_page()
        self.export_assets()
        try:
            publish(self.outputs, self.target)  # the same publisher as the bucket's
        except PublishFailed as error:
            raise CommandError(str(error)) from error

    def export_key(self, key: str) -> None:
        file_path = key_to_file(key, for_export=True)
        if file_path is None or file_path in self.written:
            return
        snapshot = (
            build.render_key(key, base_url=self.base_url)
            if self.base_url
            else build.render_key(key)
        )
        if snapshot.status != 200:
            self.skipped.append(f"{key} ({snapshot.status})")
            return
        if snapshot.content_type.startswith("text/html"):
            html = snapshot.body.decode()
            self.note_assets(html)
            body = rewrite_links_for_export(html, file_path=file_path).encode()
            self.write(file_path, body, content_type=snapshot.content_type)
        else:
            self.write(
                file_path,
                snapshot.body,
                content_type=snapshot.content_type,
                gzipped=snapshot.gzip or None,
            )

    def export_not_found_page(self) -> None:
        """404.html, for hosts that show it for a missing file (S3 websites, most CDNs).

        A host serves it at whatever path was asked for, so its links stay root-relative
        (pointing at index.html files): they work when the copy is at the root of a domain.
        """
        html: str = render_to_string(NOT_FOUND_FILE, {"page": PageSettings.load()})
        html = re.sub(
            r"""(\s(?:href|src)\s*=\s*["'])(/(?!/)[^"'<>]*)""",
            lambda m: m[1] + _directory_index(m[2]),
            html,
        )
        self.note_assets(html)
        self.write(NOT_FOUND_FILE, html.encode())

    def note_assets(self, text: str) -> None:
        for url in _ROOT_URL.findall(text):
            if url.startswith((settings.STATIC_URL, settings.MEDIA_URL)):
                self.asset_urls.add(urlsplit(url).path)

    def export_assets(self) -> None:
        """Static files and uploads the exported pages link to, under the names they use."""
        pending = sorted(self.asset_urls)
        done: set[str] = set()
        while pending:
            url = pending.pop()
            if url in done:
                continue
            done.add(url)
            data = _asset_bytes(url)
            if data is None:
                self.stderr.write(f"Missing asset {url}: pages linking to it will miss it.")
                continue
            file_path = unquote(url).lstrip("/")
            kind = mimetypes.guess_type(file_path)[0] or "application/octet-stream"
            self.write(file_path, data, content_type=kind)
            if file_path.endswith(".css"):
                # Assets a stylesheet pulls in (fonts, images), relative to the stylesheet.
                for ref in re.findall(
                    r"""url\(\s*["']?([^"')\s]+)""", data.decode(errors="ignore")
                ):
                    if ref.startswith(("data:", "http:", "https:", "//", "#")):
                        continue
                    joined = urlsplit(_join_url(url, ref)).path
                    if joined.startswith(settings.STATIC_URL) and joined not in done:
                        pending.append(joined)

    def write(
        self,
        file_path: str,
        body: bytes,
        *,
        content_type: str = "text/html; charset=utf-8",
        gzipped: bytes | None = None,
    ) -> None:
        """Queue a file for the publisher (each path once: the first one wins)."""
        self.outputs.append(Output(file_path, body, content_type, gzip=gzipped))
        self.written.add(file_path)


def _directory_index(url: str) -> str:
    parts = urlsplit(url)
    path = key_to_file(url, for_export=True) if parts.query.startswith("page=") else None
    if path is None:
        path = key_to_file(parts.path, for_export=True) if parts.path.endswith("/") else None
    if path is None:
        return url
    fragment = f"#{parts.fragment}" if parts.fragment else ""
    return f"/{path}{fragment}"


def _join_url(base: str, ref: str) -> str:
    if ref.startswith("/"):
        return ref
    return os.path.normpath(os.path.join(os.path.dirname(base), ref))


def _asset_bytes(url: str) -> bytes | None:
    """The bytes behind a /static/ or /media/ URL, as the running site would serve them."""
    if url.startswith(settings.MEDIA_URL):
        name = unquote(url.removeprefix(settings.MEDIA_URL))
        if default_storage.exists(name):
            with default_storage.open(name) as handle:
                return handle.read()
        return None
    name = unquote(url.removeprefix(settings.STATIC_URL))
    # Collected files first (hashed names of the manifest storage), then the sources.
    try:
        if staticfiles_storage.exists(name):
            with staticfiles_storage.open(name) as handle:
                return handle.read()
    except OSError:
        pass  # not collected (or unreadable): fall back to the source file below
    hashed_files = getattr(staticfiles_storage, "hashed_files", {})
    original = next((src for src, hashed in hashed_files.items() if hashed == name), name)
    source = finders.find(original)
    if source:
        return Path(source).read_bytes()
    return None


def _replace_contents(target: Path, staging: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for entry in target.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in staging.iterdir():
        shutil.move(str(entry), target / entry.name)


def _size(count: float) -> str:  # a number of bytes, divided as the unit grows
    for unit in ("bytes", "KB", "MB"):
        if count < 1024 or unit == "MB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} bytes"  # pragma: no cover

"""Writing the public outputs somewhere else: a directory (`export_static`) or an S3 bucket.

One code path for both: `publish(outputs, target)` writes each output at its path in the
static layout (static_export.key_to_file with for_export: "/" -> "index.html",
"/history/?page=2" -> "history/page/2/index.html"), skips what the target already holds
byte for byte, and with `prune` deletes what is no longer an output (a deleted incident).

The bucket gets every public output after each change (statuspage.tasks.publish_outputs,
queued by the snapshot rebuild, never by a web request), with the body, Content-Type and
Cache-Control the site serves, so that a CDN or a standby region can serve it as it is.
Settings: OBJECT_STORAGE_* (docs/deployment.md, "Object storage and a CDN").
"""

import gzip
import hashlib
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.cache import cache

from statuspage.public import cdn
from statuspage.public.snapshots import build, keys, store
from statuspage.public.snapshots.keys import current_generation
from statuspage.public.static_export import export_file_to_path, key_to_file

logger = logging.getLogger("beacon.publish")

# Objects under these prefixes are not outputs (the static assets and uploads an operator
# copies with `aws s3 sync`): pruning leaves them be.
NOT_OUTPUTS = ("static/", "media/")
DELETE_BATCH = 1000  # S3's DeleteObjects limit
# One publish at a time: an older one finishing after a newer one could put back an object
# the newer one deleted. Longer than a publish takes; released as soon as it is done.
LOCK_KEY = "beacon:publish:lock"
LOCK_SECONDS = 600
_HISTORY_PAGE_FILE = re.compile(r"^history/page/(\d+)/index\.html$")


class S3Paginator(Protocol):
    def paginate(self, **kwargs: object) -> Iterable[dict[str, list[dict[str, str]]]]: ...


class S3Client(Protocol):
    """What the publisher uses of boto3's S3 client (boto3 ships no types)."""

    def get_paginator(self, operation_name: str) -> S3Paginator: ...

    def put_object(self, **kwargs: object) -> object: ...

    def delete_objects(self, **kwargs: object) -> dict[str, list[dict[str, str]]]: ...


class PublishFailed(Exception):
    """The target could not be written; the message names no secret.

    `changed` holds the paths written or deleted before the failure (to purge all the same).
    """

    changed: list[str]

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.changed = []


@dataclass(frozen=True)
class Output:
    """One file of the public site: where it goes, its bytes and how it is served."""

    path: str
    body: bytes
    content_type: str
    cache_control: str | None = None
    # The .gz sibling a directory gets (the snapshot's own gzip variant when there is one).
    gzip: bytes | None = None

    @property
    def md5(self) -> str:
        # What S3 answers as the ETag of an object put in one part: compared, never trusted.
        return hashlib.md5(self.body, usedforsecurity=False).hexdigest()


@dataclass
class Published:
    """What a publish did: paths written, left as they were, and deleted."""

    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    deleted: list[str] = field(default_factory=list)

    @property
    def changed(self) -> list[str]:
        return self.written + self.deleted


class Target(Protocol):
    def existing(self) -> dict[str, str]:
        """Path -> MD5 hex of the body, of what the target holds now."""
        ...

    def put(self, output: Output) -> None: ...

    def delete(self, paths: list[str]) -> None: ...


def publish(
    outputs: Iterable[Output],
    target: Target,
    *,
    prune: bool = False,
    keep: Iterable[str] = (),
    force: bool = False,
) -> Published:
    """Write each output the target does not hold byte for byte (with `force`, every output:
    its headers may differ, or the object was edited); with `prune`, delete the paths that
    are neither an output nor in `keep` (outputs that could not be rendered)."""
    existing = target.existing()
    result = Published()
    wanted = set(keep)
    try:
        for output in outputs:
            if output.path in wanted:
                continue  # the first output for a path wins ("/history/" before "?page=1")
            wanted.add(output.path)
            if not force and existing.get(output.path) == output.md5:
                result.unchanged += 1
                continue
            target.put(output)
            result.written.append(output.path)
        if prune:
            stale = sorted(p for p in existing if p not in wanted and not p.startswith(NOT_OUTPUTS))
            if stale:
                target.delete(stale)
            result.deleted = stale
    except PublishFailed as error:
        error.changed = result.changed
        raise
    return result


# Where outputs go


class DirectoryTarget:
    """A directory: each output and its .gz sibling (the export; nothing there beforehand)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = self.bytes = self.gz_files = self.gz_bytes = 0

    def existing(self) -> dict[str, str]:
        return {}

    def put(self, output: Output) -> None:
        path = self.root / output.path
        if self.root.resolve() not in path.resolve().parents:
            raise PublishFailed(f"Refusing to write outside {self.root}: {output.path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(output.body)
        compressed = output.gzip or gzip.compress(output.body, compresslevel=9, mtime=0)
        path.with_name(path.name + ".gz").write_bytes(compressed)
        self.files += 1
        self.bytes += len(output.body)
        self.gz_files += 1
        self.gz_bytes += len(compressed)

    def delete(self, paths: list[str]) -> None:
        for relative in paths:
            path = self.root / relative
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".gz").unlink(missing_ok=True)


class BucketTarget:
    """An S3-compatible bucket, each output at prefix + path with its served headers."""

    def __init__(self, client: S3Client, bucket: str, *, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""

    def existing(self) -> dict[str, str]:
        found: dict[str, str] = {}
        with _failures("list", self.bucket):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    path = str(item["Key"]).removeprefix(self.prefix)
                    found[path] = str(item.get("ETag", "")).strip('"')
        return found

    def put(self, output: Output) -> None:
        extra = {"CacheControl": output.cache_control} if output.cache_control else {}
        with _failures(f"upload {output.path} to", self.bucket):
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.prefix + output.path,
                Body=output.body,
                ContentType=output.content_type,
                **extra,
            )

    def delete(self, paths: list[str]) -> None:
        for start in range(0, len(paths), DELETE_BATCH):
            batch = paths[start : start + DELETE_BATCH]
            with _failures("delete from", self.bucket):
                answer = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": self.prefix + p} for p in batch], "Quiet": True},
                )
            if answer.get("Errors"):
                raise PublishFailed(
                    f"could not delete {len(answer['Errors'])} objects from {self.bucket}"
                )


@contextmanager
def _failures(doing: str, bucket: str) -> Iterator[None]:
    """Turns boto's errors into PublishFailed, saying what failed without any credential."""
    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "error")
        raise PublishFailed(f"could not {doing} bucket {bucket}: {code}") from None
    except BotoCoreError as error:
        raise PublishFailed(f"could not {doing} bucket {bucket}: {type(error).__name__}") from None


@contextmanager
def exclusive() -> Iterator[bool]:
    """Whether this process may publish now (no other one is); held until the block ends."""
    try:
        acquired = bool(cache.add(LOCK_KEY, 1, LOCK_SECONDS))
    except Exception:
        acquired = True  # no shared cache: nobody to take turns with
    try:
        yield acquired
    finally:
        if acquired:
            try:
                cache.delete(LOCK_KEY)
            except Exception:
                logger.debug("could not release the publish lock", exc_info=True)


def bucket_enabled() -> bool:
    return bool(settings.BEACON_OBJECT_STORAGE_BUCKET)


def bucket_target() -> BucketTarget:
    """The configured bucket; credentials from the settings, else boto3's usual chain (the
    AWS_* environment variables, ~/.aws, an instance role)."""
    endpoint = settings.BEACON_OBJECT_STORAGE_ENDPOINT_URL or None
    addressing = settings.BEACON_OBJECT_STORAGE_ADDRESSING_STYLE or ("path" if endpoint else "auto")
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=settings.BEACON_OBJECT_STORAGE_REGION or None,
        aws_access_key_id=settings.BEACON_OBJECT_STORAGE_ACCESS_KEY_ID or None,
        aws_secret_access_key=settings.BEACON_OBJECT_STORAGE_SECRET_ACCESS_KEY or None,
        config=Config(
            s3={"addressing_style": addressing},
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=30,
        ),
    )
    return BucketTarget(
        client, settings.BEACON_OBJECT_STORAGE_BUCKET, prefix=settings.BEACON_OBJECT_STORAGE_PREFIX
    )


# What the site serves


def site_outputs(*, base_url: str | None = None) -> tuple[list[Output], set[str]]:
    """Every public output as the site serves it, and the paths of those that could not be
    rendered (their last copy is kept). Current snapshots are reused; the rest are rebuilt."""
    generation = current_generation(fresh=True)
    outputs: list[Output] = []
    failed: set[str] = set()
    # "/history/" before "/history/?page=1": the first key for a file wins.
    for key in sorted(keys.public_keys(everything=True), key=lambda k: ("?" in k, k)):
        path = key_to_file(key, for_export=True)
        if path is None:  # pragma: no cover - for_export always gives a file
            continue
        snapshot = store.load(key)
        if snapshot is None or snapshot.generation != generation or snapshot.status != 200:
            try:
                # Kept as a snapshot too, so that the site serves the very bytes published.
                snapshot = build.rebuild(key, base_url=base_url, wait=True) or build.render_key(
                    key, base_url=base_url
                )
            except build.RenderFailed as error:
                logger.error("could not render %s for publishing: %s", key, error)
                failed.add(path)
                continue
        if snapshot.status != 200:
            continue
        served = store.with_refresh_notice(snapshot)
        outputs.append(
            Output(
                path=path,
                body=served.body,
                content_type=served.content_type,
                cache_control=dict(served.headers).get("Cache-Control"),
                gzip=served.gzip,
            )
        )
    return outputs, failed


def publish_site_to_bucket(*, force: bool = False) -> Published:
    """Publish every public output to the configured bucket, deleting removed ones; with
    `force`, upload the outputs the bucket already holds byte for byte too."""
    outputs, failed = site_outputs()
    result = publish(outputs, bucket_target(), prune=True, keep=failed, force=force)
    logger.info(
        "published to bucket %s: %d written, %d unchanged, %d deleted",
        settings.BEACON_OBJECT_STORAGE_BUCKET,
        len(result.written),
        result.unchanged,
        len(result.deleted),
    )
    return result


def purge_urls(paths: Iterable[str]) -> list[str]:
    """The public URLs to purge at the CDN for these changed paths (none without a CDN)."""
    if not cdn.enabled():
        return []
    return cdn.public_urls([url_path(path) for path in paths])


def url_path(path: str) -> str:
    """The URL path visitors ask for of the file at `path` ("history/page/2/index.html" ->
    "/history/?page=2"): what a CDN caches and is asked to purge."""
    page = _HISTORY_PAGE_FILE.match(path)
    if page:
        return f"/history/?page={page[1]}"
    return export_file_to_path(path)

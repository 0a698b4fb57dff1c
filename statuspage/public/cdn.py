"""Telling the CDN in front of the page to drop what changed, after each publish.

CDN_PURGE picks the request: `cloudflare` (purge by URL, POST
/client/v4/zones/{zone}/purge_cache {"files": [...]} with a bearer token, 30 URLs a request),
`fastly` (POST /purge/{host}/{path} with Fastly-Key, one URL a request), `webhook` (POST
{"urls": [...]} to CDN_PURGE_WEBHOOK_URL, with the token as a bearer one when set) or `none`.
The URLs are the page's public URL (CDN_PURGE_BASE_URL, else the page's URL setting) plus each
changed output's path. docs/deployment.md, "Object storage and a CDN".
"""

import logging
import time
from collections.abc import Callable, Sequence
from urllib.parse import quote, urlsplit

import httpx
from django.conf import settings

from statuspage.models import PageSettings

logger = logging.getLogger("beacon.publish")

PROVIDERS = ("none", "cloudflare", "fastly", "webhook")
DEFAULT_API_URLS = {"cloudflare": "https://api.cloudflare.com", "fastly": "https://api.fastly.com"}
CLOUDFLARE_FILES_PER_REQUEST = 30
ATTEMPTS = 3
TIMEOUT_SECONDS = 10.0


class PurgeFailed(Exception):
    """The CDN did not accept the purge; the message names no token."""


def enabled() -> bool:
    return settings.BEACON_CDN_PURGE not in ("", "none")


def public_urls(paths: Sequence[str]) -> list[str]:
    """The URLs visitors use for these URL paths ("/incidents/abc/")."""
    base = (settings.BEACON_CDN_PURGE_BASE_URL or PageSettings.load().url or "").rstrip("/")
    if not base:
        raise PurgeFailed("no public URL to purge: set CDN_PURGE_BASE_URL or the page's URL")
    return [f"{base}{path}" for path in dict.fromkeys(paths)]


def purge(urls: Sequence[str], *, sleep: Callable[[float], None] = time.sleep) -> None:
    """Purge these URLs with the configured provider; each request is tried ATTEMPTS times
    (1 s, then 2 s apart) before PurgeFailed."""
    provider = settings.BEACON_CDN_PURGE or "none"
    if provider == "none" or not urls:
        return
    if provider not in PROVIDERS:
        raise PurgeFailed(f"unknown CDN_PURGE {provider!r}: one of {', '.join(PROVIDERS)}")
    api = (settings.BEACON_CDN_PURGE_API_URL or DEFAULT_API_URLS.get(provider, "")).rstrip("/")
    token = settings.BEACON_CDN_PURGE_TOKEN
    requests: list[tuple[str, dict[str, str], dict[str, list[str]] | None]] = []
    if provider == "cloudflare":
        zone = settings.BEACON_CDN_PURGE_ZONE
        if not zone or not token:
            raise PurgeFailed("Cloudflare purging needs CDN_PURGE_ZONE and CDN_PURGE_TOKEN")
        endpoint = f"{api}/client/v4/zones/{zone}/purge_cache"
        for start in range(0, len(urls), CLOUDFLARE_FILES_PER_REQUEST):
            files = list(urls[start : start + CLOUDFLARE_FILES_PER_REQUEST])
            requests.append((endpoint, {"Authorization": f"Bearer {token}"}, {"files": files}))
    elif provider == "fastly":
        if not token:
            raise PurgeFailed("Fastly purging needs CDN_PURGE_TOKEN (an API token)")
        for url in urls:
            parts = urlsplit(url)
            # The cached URL without its scheme; a query stays part of it ("%3F"), not ours.
            cached = quote(parts.netloc + parts.path + (f"?{parts.query}" if parts.query else ""))
            requests.append((f"{api}/purge/{cached}", {"Fastly-Key": token}, None))
    else:
        endpoint = settings.BEACON_CDN_PURGE_WEBHOOK_URL
        if not endpoint:
            raise PurgeFailed("webhook purging needs CDN_PURGE_WEBHOOK_URL")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        requests.append((endpoint, headers, {"urls": list(urls)}))

    with httpx.Client(timeout=TIMEOUT_SECONDS) as client:
        for endpoint, headers, body in requests:
            _send(client, provider, endpoint, headers, body, sleep=sleep)
    logger.info("purged %d URLs at %s", len(urls), provider)


def _send(
    client: httpx.Client,
    provider: str,
    endpoint: str,
    headers: dict[str, str],
    body: dict[str, list[str]] | None,
    *,
    sleep: Callable[[float], None],
) -> None:
    where = urlsplit(endpoint).netloc  # the host only: a webhook URL may carry a secret
    for attempt in range(1, ATTEMPTS + 1):
        try:
            response = client.post(endpoint, headers=headers, json=body)
            if response.status_code < 300:
                return
            reason = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                raise PurgeFailed(f"{provider} purge at {where} refused: {reason}")
        except httpx.HTTPError as error:
            reason = type(error).__name__
        logger.warning(
            "%s purge at %s failed (%s), attempt %d of %d",
            provider,
            where,
            reason,
            attempt,
            ATTEMPTS,
        )
        if attempt < ATTEMPTS:
            sleep(2 ** (attempt - 1))
    raise PurgeFailed(f"{provider} purge at {where} failed: {reason}")

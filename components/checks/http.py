"""HTTP(S): a request, then its status code, body keyword and JSON assertion."""

import json
from urllib.parse import urljoin, urlsplit

import httpx

from components.checks import decoding, jsonpath, outbound
from components.checks.base import CheckKindRunner
from components.checks.outcome import Outcome
from components.models import HealthCheck
from statuspage.lib.network import url_problem

MAX_REDIRECTS = 5
# Enough of a body for keywords and health JSON; a check never downloads a whole site.
MAX_BODY_BYTES = 1024 * 1024


class HttpCheck(CheckKindRunner):
    required = ("url",)

    def validate(self, check: HealthCheck) -> dict[str, str]:
        errors = super().validate(check)
        problem = check.url and url_problem(check.url)
        if problem:
            errors["url"] = problem
        if not all(isinstance(code, int) and 100 <= code <= 599 for code in check.expect_status):
            errors["expect_status"] = "A list of status codes between 100 and 599."
        if not isinstance(check.headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in check.headers.items()
        ):
            errors["headers"] = 'An object of header names and values, e.g. {"X-Key": "…"}.'
        if check.json_assertion:
            try:
                jsonpath.parse(check.json_assertion)
            except jsonpath.AssertionSyntaxError as error:
                errors["json_assertion"] = str(error)
        return errors

    async def run(self, check: HealthCheck, client: httpx.AsyncClient) -> Outcome:
        if check.verify_tls:
            return await self._follow(check, client)
        # httpx fixes TLS verification per client: an unverified check gets one of its own.
        async with outbound.client(verify=False, headers=client.headers) as unverified:
            return await self._follow(check, unverified)

    async def _follow(self, check: HealthCheck, client: httpx.AsyncClient) -> Outcome:
        url = check.url
        for _ in range(MAX_REDIRECTS + 1):
            # Every hop's connection is guarded (outbound): a redirect must not lead to a
            # refused address.
            guard_url(url)
            request = client.build_request(
                check.method or "GET",
                url,
                headers=check.headers or None,
                content=check.body.encode() if check.body else None,
            )
            response = await client.send(request, stream=True)
            try:
                if check.follow_redirects and response.has_redirect_location:
                    url = urljoin(url, response.headers["location"])
                    continue
                body = await read_some(response)
            finally:
                await response.aclose()
            return judge(check, response.status_code, body)
        return Outcome.down(f"More than {MAX_REDIRECTS} redirects")


async def fetch(client: httpx.AsyncClient, url: str, **params: str) -> tuple[int, bytes]:
    """GET a URL that checks may reach: its status code and up to MAX_BODY_BYTES of body."""
    guard_url(url)
    response = await client.send(client.build_request("GET", url, params=params), stream=True)
    try:
        return response.status_code, await read_some(response)
    finally:
        await response.aclose()


def guard_url(url: str) -> None:
    """Only http(s) URLs with a host; their addresses are vetted as they are connected to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"Not an http(s) URL: {url}")


async def read_some(response: httpx.Response) -> bytes:
    """Up to MAX_BODY_BYTES of the body, decoded: the cap counts inflated bytes as they are
    produced, so a compression bomb is cut at the cap (decoding)."""
    decoder = decoding.BodyDecoder(response.headers.get_list("content-encoding", True))
    chunks, size = [], 0
    async for raw in response.aiter_raw():
        for piece in decoder.feed(raw):
            chunks.append(piece)
            size += len(piece)
            if size >= MAX_BODY_BYTES:
                return b"".join(chunks)[:MAX_BODY_BYTES]
    return b"".join(chunks)


def judge(check: HealthCheck, status_code: int, body: bytes) -> Outcome:
    accepted = check.expect_status or range(200, 400)
    if status_code not in accepted:
        expected = ", ".join(map(str, check.expect_status)) or "200–399"
        return Outcome.down(f"Status {status_code}, expected {expected}", status_code=status_code)
    text = body.decode("utf-8", errors="replace")
    if check.keyword:
        present = check.keyword in text
        if present and check.keyword_absent:
            return Outcome.down(f"Found {check.keyword!r}", status_code=status_code)
        if not present and not check.keyword_absent:
            return Outcome.down(f"{check.keyword!r} not found", status_code=status_code)
    if check.json_assertion:
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            return Outcome.down("The body is not JSON", status_code=status_code)
        ok, found = jsonpath.holds(check.json_assertion, document)
        if not ok:
            return Outcome.down(
                f"{check.json_assertion} does not hold: {found}", status_code=status_code
            )
    return Outcome.up(status_code=status_code)

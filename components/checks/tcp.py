"""TCP: a connection to host:port, the connect time its latency."""

import asyncio
import contextlib
import ssl
import time
from typing import Any

import httpx

from components.checks.base import CheckKindRunner
from components.checks.outcome import Outcome
from components.models import HealthCheck
from statuspage.lib.network import resolve, target_problem


class TcpCheck(CheckKindRunner):
    required = ("host", "port")

    def validate(self, check: HealthCheck) -> dict[str, str]:
        errors = super().validate(check)
        problem = check.host and target_problem(check.host)
        if problem:
            errors["host"] = problem
        if check.port is not None and not 1 <= check.port <= 65535:
            errors["port"] = "A port between 1 and 65535."
        return errors

    async def run(self, check: HealthCheck, client: httpx.AsyncClient) -> Outcome:
        if check.port is None:  # validate() refuses this; a row written around it says why
            return Outcome.down("No port is set")
        started = time.perf_counter()
        _, writer = await connect(check.host, check.port)
        latency_ms = (time.perf_counter() - started) * 1000
        await close(writer)
        return Outcome.up(latency_ms=latency_ms)


async def connect(
    host: str, port: int, **options: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the first of `host`'s allowed addresses that answers.

    The name is resolved once and the address connected to is one that was checked: a DNS
    answer that changes between the check and the connection cannot lead elsewhere.
    `options` go to asyncio.open_connection (ssl=…, server_hostname=… for TLS).
    """
    addresses = await resolve(host, port)
    last_error: OSError | None = None
    for address in addresses:
        try:
            return await asyncio.open_connection(address, port, **options)
        except ssl.SSLError:  # the server answered, and its answer is the check's result
            raise
        except OSError as error:  # try the next address (IPv6 then IPv4, say)
            last_error = error
    assert last_error is not None  # resolve() answers at least one address or raises
    raise last_error


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):  # the peer went first: nothing left to close
        await writer.wait_closed()

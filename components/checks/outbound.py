"""The HTTP client checks use: every connection to an address the guard vetted, resolved once.

httpx resolves a URL's host itself when it connects, so a guard that resolved the name first
would leave a window: a DNS answer that changes in between (DNS rebinding) would send the
request to an address nobody checked. Here the connection layer asks `network.resolve` for
the name's allowed addresses and connects to one of them; TLS still sends the URL's host
name as SNI and verifies the certificate for it, as httpx does above the connection.

Answers are held to limits while they arrive, so a hostile target costs a worker little:
the response head to MAX_HEADER_BYTES, each of its lines to MAX_HEADER_LINE_BYTES (nginx's
defaults for requests), before h11 parses it.
"""

import re
import ssl
import typing

import httpcore
import httpx

from components.checks import decoding
from statuspage.lib.network import resolve

MAX_HEADER_BYTES = 16 * 1024
MAX_HEADER_LINE_BYTES = 8 * 1024

# h11 ends a head at an empty line, with or without its carriage return.
_HEAD_END = re.compile(rb"\n\r?\n")
_INFORMATIONAL = re.compile(rb"HTTP/\d(?:\.\d)? 1\d\d")


def client(
    *, verify: bool | ssl.SSLContext, headers: httpx.Headers | dict[str, str] | None = None
) -> httpx.AsyncClient:
    """A client for checks: guarded connections, no redirects followed on its own, no
    keep-alive (a connection reused later would skip the guard), no deadline of its own (the
    runner cuts each check at its timeout), and no proxy from the environment (a proxy would
    resolve the name itself, beyond the guard)."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif verify is True:
        context = ssl.create_default_context()
    else:
        context = verify
    headers = httpx.Headers(headers)
    headers["Accept-Encoding"] = decoding.ACCEPT_ENCODING  # what read_some decodes, bounded
    return httpx.AsyncClient(
        transport=GuardedTransport(context),
        headers=headers,
        follow_redirects=False,
        timeout=None,
        trust_env=False,
    )


class GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx takes no network backend: the pool it built is replaced by the same pool
        # over the guarded backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=None,
            max_keepalive_connections=0,
            network_backend=GuardedBackend(),
        )


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects to the first allowed address of a host that answers."""

    def __init__(self) -> None:
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve(host, port)  # TargetRefused when any address is refused
        last_error: Exception | None = None
        for address in addresses:
            try:
                stream = await self._backend.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as error:  # try the next address (IPv6, then IPv4)
                last_error = error
                continue
            return HeadLimitedStream(stream)
        assert last_error is not None  # resolve() answers at least one address or raises
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("Checks connect over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class HeadLimitedStream(httpcore.AsyncNetworkStream):
    """A connection whose response heads (1xx ones included) are cut at the limits."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._head = bytearray()  # the head being received
        self._earlier = 0  # bytes of the informational heads before it
        self._in_head = True

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await self._stream.read(max_bytes, timeout)
        if self._in_head and data:
            self._watch(data)
        return data

    def _watch(self, data: bytes) -> None:
        self._head += data
        while self._in_head:
            end = _HEAD_END.search(self._head)
            head = self._head if end is None else self._head[: end.end()]
            if any(len(line) > MAX_HEADER_LINE_BYTES for line in head.split(b"\n")):
                raise httpcore.RemoteProtocolError(
                    f"A response header line over {MAX_HEADER_LINE_BYTES // 1024} KiB"
                )
            if self._earlier + len(head) > MAX_HEADER_BYTES:
                raise httpcore.RemoteProtocolError(
                    f"Response headers over {MAX_HEADER_BYTES // 1024} KiB"
                )
            if end is None:
                return
            if _INFORMATIONAL.match(head):  # 100 Continue, 103 Early Hints: a head follows
                self._earlier += len(head)
                del self._head[: end.end()]
                continue
            self._in_head = False
            self._head = bytearray()

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # server_hostname is the URL's host, not the address: SNI and verification hold.
        secured = await self._stream.start_tls(ssl_context, server_hostname, timeout)
        return HeadLimitedStream(secured)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)

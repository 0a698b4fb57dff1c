"""Compressed bodies decoded a bounded step at a time, so the size cap applies to what they
inflate to.

httpx inflates each received chunk whole before its caller sees a byte: a 64 KiB chunk of a
gzip bomb becomes 64 MB at once, before any cap can apply. Here every decompressor gives at
most STEP_BYTES per step and is asked for more only while the reader wants more, so reading
the first megabyte of a body that inflates to a terabyte costs about a megabyte.
"""

import zlib
from collections.abc import Iterator

import brotli

STEP_BYTES = 64 * 1024
# Encodings stacked on one body ("gzip, gzip"): real servers use one.
MAX_ENCODINGS = 3


class DecodingError(Exception):
    """The body is not what its Content-Encoding says."""


class _Zlib:
    """gzip, or deflate with its zlib wrapper or without (servers send both)."""

    def __init__(self, name: str, wbits: int) -> None:
        self.name = name
        self._inflate = zlib.decompressobj(wbits)
        # deflate's first two bytes tell a zlib wrapper from raw deflate; until they came:
        self._head: bytes | None = b"" if name == "deflate" else None

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._head is not None:
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
            self._head = None
            if not _zlib_header(data):
                self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            while not self._inflate.eof:
                piece = self._inflate.decompress(data, STEP_BYTES)
                data = self._inflate.unconsumed_tail
                yield piece
                # A full step may leave output behind even when all input was taken.
                if not data and len(piece) < STEP_BYTES:
                    return
        except zlib.error as error:
            raise DecodingError(f"Cannot decode the {self.name} body: {error}") from error


def _zlib_header(data: bytes) -> bool:
    """RFC 1950: compression method 8, and the two bytes a multiple of 31."""
    return data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


class _Brotli:
    name = "br"

    def __init__(self) -> None:
        self._inflate = brotli.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            yield self._inflate.process(data, output_buffer_limit=STEP_BYTES)
            # Output held back by the limit comes with empty input, a step at a time, until
            # none is left (can_accept_more_data() says True too early to rely on).
            while not self._inflate.is_finished():
                piece = self._inflate.process(b"", output_buffer_limit=STEP_BYTES)
                if not piece:
                    return
                yield piece
        except brotli.error as error:
            raise DecodingError(f"Cannot decode the br body: {error}") from error


def _decoder(encoding: str) -> _Zlib | _Brotli | None:
    if encoding in ("gzip", "x-gzip"):
        return _Zlib("gzip", zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        return _Zlib("deflate", zlib.MAX_WBITS)
    if encoding == "br":
        return _Brotli()
    return None  # identity, or one we did not ask for: the body as it came, as httpx does


# What checks ask servers for: exactly what they decode here.
ACCEPT_ENCODING = "gzip, deflate, br"


class BodyDecoder:
    """Raw chunks in, decoded pieces of at most STEP_BYTES out, for a Content-Encoding list."""

    def __init__(self, encodings: list[str]) -> None:
        names = [e.strip().lower() for e in encodings if e.strip()]
        if len(names) > MAX_ENCODINGS:
            raise DecodingError(
                f"{len(names)} content encodings ({', '.join(names)}); at most {MAX_ENCODINGS}"
            )
        found = [_decoder(name) for name in reversed(names)]  # the last applied comes off first
        self._decoders = [decoder for decoder in found if decoder is not None]

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Lazily: each piece is produced only when the one before was taken."""
        return self._through(data, 0)

    def _through(self, data: bytes, level: int) -> Iterator[bytes]:
        if level == len(self._decoders):
            if data:
                yield data
            return
        for piece in self._decoders[level].feed(data):
            if piece:
                yield from self._through(piece, level + 1)

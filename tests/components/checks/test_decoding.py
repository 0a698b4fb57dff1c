"""Compressed answers are decoded a bounded step at a time: the body cap counts inflated
bytes, so a compression bomb costs a worker about the cap, not what it inflates to."""

import gzip
import struct
import time
import tracemalloc
import zlib

import brotli
import pytest

from components.checks.decoding import STEP_BYTES, BodyDecoder, DecodingError
from components.checks.http import MAX_BODY_BYTES
from components.checks.runner import run_batch
from components.models import CheckKind, Verdict
from tests.components.factories import HealthCheckFactory

GIB = 1 << 30
MIB = 1 << 20


def _deflate_blocks(mebibytes: int, wbits: int) -> tuple[bytes, bytes, bytes]:
    """(first, middle, last) compressed blocks of 1 MiB of zeros each: after a full flush the
    compressor starts over, so every middle block is the same bytes and a bomb of any size
    is built by repeating one, without compressing it all."""
    zeros = bytes(MIB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    middle = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    last = compressor.compress(zeros) + compressor.flush()
    return first, middle * (mebibytes - 2), last


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """A valid gzip body of 1 MB that inflates to 1 GiB of zeros."""
    first, middle, last = _deflate_blocks(1024, -zlib.MAX_WBITS)
    crc = 0
    for _ in range(1024):
        crc = zlib.crc32(bytes(MIB), crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + first + middle + last + struct.pack("<II", crc, GIB & 0xFFFFFFFF)


@pytest.fixture(scope="module")
def deflate_bomb() -> bytes:
    """deflate with its zlib wrapper, 1 GiB of zeros (the checksum left out: never reached)."""
    first, middle, last = _deflate_blocks(1024, zlib.MAX_WBITS)
    return first + middle + last


@pytest.fixture(scope="module")
def raw_deflate_bomb() -> bytes:
    first, middle, last = _deflate_blocks(1024, -zlib.MAX_WBITS)
    return first + middle + last


@pytest.fixture(scope="module")
def brotli_bomb() -> bytes:
    compressor = brotli.Compressor(quality=1)
    zeros = bytes(MIB)
    return b"".join(compressor.process(zeros) for _ in range(1024)) + compressor.finish()


@pytest.fixture(autouse=True)
def allow_local_targets(settings):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True


def _bomb(name, request):
    if name == "gzip, gzip":
        return gzip.compress(request.getfixturevalue("gzip_bomb"))
    if name == "gzip, br":
        return brotli.compress(request.getfixturevalue("gzip_bomb"))
    if name == "br, gzip, gzip":
        return gzip.compress(gzip.compress(request.getfixturevalue("brotli_bomb")))
    fixture = {"gzip": "gzip_bomb", "deflate": "deflate_bomb", "br": "brotli_bomb"}[name]
    return request.getfixturevalue(fixture)


@pytest.mark.parametrize(
    "encoding", ["gzip", "deflate", "br", "gzip, gzip", "gzip, br", "br, gzip, gzip"]
)
def test_a_compression_bomb_is_cut_at_the_cap_quickly_and_in_little_memory(
    httpserver, request, encoding
):
    body = _bomb(encoding, request)
    httpserver.expect_request("/health").respond_with_data(
        body, headers={"Content-Encoding": encoding}
    )
    check = HealthCheckFactory.build(
        kind=CheckKind.HTTP, url=httpserver.url_for("/health"), keyword="healthy", timeout=10
    )
    tracemalloc.start()
    started = time.perf_counter()
    try:
        [outcome] = run_batch([check])
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Judged on the first megabyte of zeros, which does not say "healthy".
    assert outcome.verdict == Verdict.DOWN and outcome.error == "'healthy' not found"
    assert peak < 12 * MIB, f"{peak / MIB:.0f} MiB"  # not the 64 MiB of one inflated chunk
    assert elapsed < 3


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some send
        ("br", brotli.compress),
        ("gzip, br", lambda data: brotli.compress(gzip.compress(data))),
        ("identity", lambda data: data),
        ("", lambda data: data),
    ],
)
def test_compressed_answers_are_decoded_whatever_the_chunking(encoding, encode):
    body = b'{"status": "ok", "pad": "' + b"x" * 200_000 + b'"}'
    encoded = encode(body)
    for size in (1, 7, 4096, len(encoded)):
        decoder = BodyDecoder(encoding.split(","))
        decoded = b"".join(
            piece
            for i in range(0, len(encoded), size)
            for piece in decoder.feed(encoded[i : i + size])
        )
        assert decoded == body


def test_every_decoded_piece_is_one_step_at_most(gzip_bomb):
    decoder = BodyDecoder(["gzip"])
    pieces = decoder.feed(gzip_bomb[:65536])
    sizes = [len(next(pieces)) for _ in range(100)]
    assert max(sizes) <= STEP_BYTES


def test_a_gzip_health_answer_is_judged_on_its_decoded_json(httpserver):
    httpserver.expect_request("/health").respond_with_data(
        gzip.compress(b'{"status": "ok"}'), headers={"Content-Encoding": "gzip"}
    )
    check = HealthCheckFactory.build(
        kind=CheckKind.HTTP, url=httpserver.url_for("/health"), json_assertion='$.status == "ok"'
    )
    [outcome] = run_batch([check])
    assert outcome.verdict == Verdict.UP
    assert httpserver.log[0][0].headers["Accept-Encoding"] == "gzip, deflate, br"


@pytest.mark.parametrize(
    ("encoding", "body", "error"),
    [
        ("gzip", b"not gzip at all", "Cannot decode the gzip body: "),
        ("br", b"not brotli", "Cannot decode the br body: "),
        ("deflate", b"\xff\xfe not deflate", "Cannot decode the deflate body: "),
        ("gzip, gzip, gzip, gzip", gzip.compress(b"ok"), "4 content encodings"),
    ],
)
def test_a_body_that_is_not_what_its_encoding_says_fails_the_check_clearly(
    httpserver, encoding, body, error
):
    httpserver.expect_request("/health").respond_with_data(
        body, headers={"Content-Encoding": encoding}
    )
    [outcome] = run_batch(
        [HealthCheckFactory.build(kind=CheckKind.HTTP, url=httpserver.url_for("/health"))]
    )
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error.startswith(error)


def test_too_many_encodings_are_refused_before_decoding():
    with pytest.raises(DecodingError, match="at most 3"):
        BodyDecoder(["gzip", "gzip", "br", "deflate"])
    assert MAX_BODY_BYTES == MIB

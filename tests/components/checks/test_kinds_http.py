"""HTTP checks at their edges, against real servers: pytest-httpserver, a raw socket server
that answers a byte a second, and an HTTPS server with a self-signed certificate."""

import contextlib
import socket
import socketserver
import ssl
import threading
import time

import pytest
import trustme
from pytest_httpserver import HTTPServer
from werkzeug import Response

from components.checks import KINDS
from components.checks.runner import run_batch
from components.models import CheckKind, Verdict
from tests.components.factories import HealthCheckFactory


@pytest.fixture(autouse=True)
def allow_local_targets(settings):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True


@pytest.fixture
def threaded_server():
    """An HTTP server answering each request in its own thread: a hanging handler blocks
    only its own request. `release` lets hanging handlers go at teardown."""
    server = HTTPServer(threaded=True)
    server.release = threading.Event()
    server.start()
    yield server
    server.release.set()
    server.clear()
    server.stop()


@pytest.fixture
def byte_a_second_server():
    """A raw TCP server answering a valid HTTP response, one byte a second."""
    stop = threading.Event()
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    class Trickle(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.recv(65536)
            for byte in response:
                if stop.wait(1):
                    return
                try:
                    self.request.sendall(bytes([byte]))
                except OSError:  # the check hung up at its timeout
                    return

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    stop.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def self_signed_https():
    certificate = trustme.CA().issue_cert("localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    server = HTTPServer(ssl_context=context)
    server.start()
    server.expect_request("/health").respond_with_data("ok")
    yield server
    server.clear()
    server.stop()


def http_check(url, **fields):
    return HealthCheckFactory.build(kind=CheckKind.HTTP, url=url, **fields)


def run(check):
    [outcome] = run_batch([check])
    return outcome


@pytest.mark.parametrize(
    ("status", "expect_status", "verdict", "error"),
    [
        (200, [], Verdict.UP, ""),
        (304, [], Verdict.UP, ""),  # a 3xx without a Location is an answer, not a redirect
        (399, [], Verdict.UP, ""),
        (404, [], Verdict.DOWN, "Status 404, expected 200–399"),
        (503, [], Verdict.DOWN, "Status 503, expected 200–399"),
        (204, [204], Verdict.UP, ""),
        (200, [201, 202], Verdict.DOWN, "Status 200, expected 201, 202"),
        (503, [200, 503], Verdict.UP, ""),
    ],
)
def test_the_status_code_is_judged_against_the_expected_ones(
    httpserver, status, expect_status, verdict, error
):
    httpserver.expect_request("/health").respond_with_data("", status=status)
    outcome = run(http_check(httpserver.url_for("/health"), expect_status=expect_status))
    assert (outcome.verdict, outcome.error, outcome.status_code) == (verdict, error, status)


def test_a_keyword_must_be_present(httpserver):
    httpserver.expect_request("/health").respond_with_data("all systems nominal")
    present = http_check(httpserver.url_for("/health"), keyword="nominal")
    missing = http_check(httpserver.url_for("/health"), keyword="Nominal")
    outcomes = run_batch([present, missing])
    assert outcomes[0].verdict == Verdict.UP
    assert outcomes[1].verdict == Verdict.DOWN and outcomes[1].error == "'Nominal' not found"


def test_a_keyword_that_must_be_absent_fails_when_found(httpserver):
    httpserver.expect_request("/health").respond_with_data("<h1>Maintenance mode</h1>")
    found = http_check(httpserver.url_for("/health"), keyword="Maintenance", keyword_absent=True)
    absent = http_check(httpserver.url_for("/health"), keyword="Fatal error", keyword_absent=True)
    outcomes = run_batch([found, absent])
    assert outcomes[0].verdict == Verdict.DOWN and outcomes[0].error == "Found 'Maintenance'"
    assert outcomes[1].verdict == Verdict.UP


def test_a_json_assertion_holds_fails_or_finds_no_json(httpserver):
    httpserver.expect_request("/health").respond_with_json(
        {"status": "ok", "queue": {"depth": 250}}
    )
    httpserver.expect_request("/page").respond_with_data("<html>ok</html>")
    url = httpserver.url_for("/health")
    outcomes = run_batch(
        [
            http_check(url, json_assertion='$.status == "ok"'),
            http_check(url, json_assertion="$.queue.depth < 100"),
            http_check(url, json_assertion="$.checks[0].healthy == true"),
            http_check(httpserver.url_for("/page"), json_assertion='$.status == "ok"'),
        ]
    )
    assert [o.verdict for o in outcomes] == [Verdict.UP, Verdict.DOWN, Verdict.DOWN, Verdict.DOWN]
    assert outcomes[1].error == "$.queue.depth < 100 does not hold: $.queue.depth is 250"
    assert outcomes[2].error.endswith("does not hold: $.checks[0].healthy is missing")
    assert outcomes[3].error == "The body is not JSON"


def test_a_hanging_target_is_down_at_its_timeout_without_delaying_other_checks(threaded_server):
    def hang(request):
        threaded_server.release.wait(10)
        return Response("too late")

    threaded_server.expect_request("/hang").respond_with_handler(hang)
    threaded_server.expect_request("/hang-longer").respond_with_handler(hang)
    threaded_server.expect_request("/fast").respond_with_data("ok")
    checks = [
        http_check(threaded_server.url_for("/hang"), timeout=1.0),
        http_check(threaded_server.url_for("/hang-longer"), timeout=1.5),
        http_check(threaded_server.url_for("/fast"), timeout=1.5),
    ]
    started = time.perf_counter()
    hanging, hanging_longer, fast = run_batch(checks)
    elapsed = time.perf_counter() - started

    assert hanging.verdict == Verdict.DOWN and hanging.error == "No complete answer within 1 s"
    assert hanging_longer.error == "No complete answer within 1.5 s"
    assert fast.verdict == Verdict.UP and fast.latency_ms < 1000
    assert 1.5 <= elapsed < 2.2  # the longest timeout, not the 2.5 s sum


def test_a_target_answering_a_byte_a_second_is_cut_at_the_timeout(byte_a_second_server):
    started = time.perf_counter()
    outcome = run(http_check(byte_a_second_server, timeout=1.5))
    elapsed = time.perf_counter() - started
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error == "No complete answer within 1.5 s"
    assert elapsed < 2.2  # the whole answer would take 40 s


def test_redirects_are_followed_when_asked(httpserver):
    httpserver.expect_request("/old").respond_with_data(
        "", status=302, headers={"Location": "/new"}
    )
    httpserver.expect_request("/new").respond_with_data("the new home")
    outcome = run(http_check(httpserver.url_for("/old"), keyword="new home"))
    assert outcome.verdict == Verdict.UP and outcome.status_code == 200


def test_an_unfollowed_redirect_counts_as_its_own_status(httpserver):
    httpserver.expect_request("/old").respond_with_data(
        "", status=302, headers={"Location": "/new"}
    )
    url = httpserver.url_for("/old")
    outcomes = run_batch(
        [
            http_check(url, follow_redirects=False),
            http_check(url, follow_redirects=False, expect_status=[200]),
        ]
    )
    assert outcomes[0].verdict == Verdict.UP and outcomes[0].status_code == 302
    assert outcomes[1].verdict == Verdict.DOWN
    assert outcomes[1].error == "Status 302, expected 200"
    assert [entry[0].path for entry in httpserver.log] == ["/old", "/old"]


def test_a_redirect_to_the_metadata_service_is_refused(httpserver):
    httpserver.expect_request("/old").respond_with_data(
        "", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    outcome = run(http_check(httpserver.url_for("/old")))
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error == "Refused: 169.254.169.254: 169.254.169.254 is a cloud metadata address"


def test_a_redirect_loop_stops_after_five_hops(httpserver):
    httpserver.expect_request("/loop").respond_with_data(
        "", status=302, headers={"Location": "/loop"}
    )
    outcome = run(http_check(httpserver.url_for("/loop")))
    assert outcome.verdict == Verdict.DOWN and outcome.error == "More than 5 redirects"
    assert len(httpserver.log) == 6


def test_a_self_signed_certificate_fails_unless_verification_is_off(self_signed_https):
    url = self_signed_https.url_for("/health")
    assert url.startswith("https://")
    verified, unverified = run_batch(
        [http_check(url, verify_tls=True), http_check(url, verify_tls=False)]
    )
    assert verified.verdict == Verdict.DOWN
    assert "CERTIFICATE_VERIFY_FAILED" in verified.error
    assert unverified.verdict == Verdict.UP and unverified.status_code == 200


def test_a_closed_port_is_down_cannot_connect():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    outcome = run(http_check(f"http://127.0.0.1:{port}/"))
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error.startswith("Cannot connect: ")


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({}, {}),
        ({"url": ""}, {"url": "This check kind needs it."}),
        ({"url": "ftp://files.acme.test/"}, {"url": "Use an http:// or https:// URL."}),
        (
            {"expect_status": [200, 700]},
            {"expect_status": "A list of status codes between 100 and 599."},
        ),
        (
            {"headers": {"X-Key": 1}},
            {"headers": 'An object of header names and values, e.g. {"X-Key": "…"}.'},
        ),
        (
            {"json_assertion": "$.status == ok"},
            {"json_assertion": "'ok' is not a JSON value (strings need double quotes)."},
        ),
    ],
)
def test_an_http_check_validates_its_url_statuses_headers_and_assertion(fields, errors):
    check = http_check(**{"url": "https://api.acme.test/health", **fields})
    assert KINDS[CheckKind.HTTP].validate(check) == errors


def test_the_configured_timeout_is_the_only_deadline_not_httpx_default(threaded_server):
    def slow(seconds):
        def handler(request):
            threaded_server.release.wait(seconds)
            return Response("ok")

        return handler

    # Past httpx's default 5 s: only a client built without that default waits for it.
    threaded_server.expect_request("/slow").respond_with_handler(slow(5.3))
    threaded_server.expect_request("/slowish").respond_with_handler(slow(2))
    started = time.perf_counter()
    patient, impatient, unverified = run_batch(
        [
            http_check(threaded_server.url_for("/slow"), timeout=8.0),
            http_check(threaded_server.url_for("/slowish"), timeout=1.0),
            http_check(threaded_server.url_for("/slow"), timeout=8.0, verify_tls=False),
        ]
    )
    elapsed = time.perf_counter() - started
    assert patient.verdict == Verdict.UP and 5000 < patient.latency_ms < 8000
    assert unverified.verdict == Verdict.UP
    assert impatient.verdict == Verdict.DOWN
    assert impatient.error == "No complete answer within 1 s"
    assert elapsed < 7


@pytest.fixture
def raw_server():
    """raw_server(response) -> URL of a TCP server that answers every request with `response`
    (bytes, sent as they are) and hangs up."""
    servers = []

    def start(response: bytes) -> str:
        class Answer(socketserver.BaseRequestHandler):
            def handle(self):
                self.request.recv(65536)
                with contextlib.suppress(OSError):  # the check hung up first
                    self.request.sendall(response)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Answer)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/health"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("head", "error"),
    [
        # One 100 KiB header line.
        (
            b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100 * 1024 + b"\r\n",
            "A response header line over 8 KiB",
        ),
        # Many short lines adding up to 100 KiB.
        (
            b"HTTP/1.1 200 OK\r\n"
            + b"X-Many: "
            + b"b" * 90
            + b"\r\n" * 1
            + b"".join(b"X-H%d: %s\r\n" % (i, b"c" * 90) for i in range(1000)),
            "Response headers over 16 KiB",
        ),
        # Bare line feeds, as h11 accepts them.
        (
            b"HTTP/1.1 200 OK\n" + b"".join(b"X-H%d: %s\n" % (i, b"d" * 90) for i in range(1000)),
            "Response headers over 16 KiB",
        ),
        # Informational heads count too: a flood of 103 Early Hints before the answer.
        (
            b"".join(
                b"HTTP/1.1 103 Early Hints\r\nLink: <%s>\r\n\r\n" % (b"e" * 900) for _ in range(100)
            )
            + b"HTTP/1.1 200 OK\r\n",
            "Response headers over 16 KiB",
        ),
        # A status line that never ends.
        (b"HTTP/1.1 200 " + b"O" * 100 * 1024, "A response header line over 8 KiB"),
    ],
)
def test_oversized_response_headers_fail_the_check_quickly(raw_server, head, error):
    url = raw_server(head + b"Content-Length: 2\r\n\r\nok")
    started = time.perf_counter()
    outcome = run(http_check(url, timeout=5))
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error == error
    assert time.perf_counter() - started < 2


def test_headers_within_the_limits_are_fine_after_informational_answers(raw_server):
    head = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        + b"HTTP/1.1 200 OK\r\nX-Long: "
        + b"f" * 7000
        + b"\r\n"
        + b"".join(b"X-H%d: %s\r\n" % (i, b"g" * 90) for i in range(80))
        + b"Content-Length: 2\r\n\r\nok"
    )
    outcome = run(http_check(raw_server(head), keyword="ok"))
    assert outcome.verdict == Verdict.UP and outcome.status_code == 200

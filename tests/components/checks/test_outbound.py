"""Checks resolve a target's name once and connect to the address the guard vetted.

The resolver is the edge here: `socket.getaddrinfo`, which asyncio's resolver calls, is
replaced by one that answers what a DNS-rebinding attacker would (a vetted address first,
another one after), and counts the questions.
"""

import socket
import socketserver
import ssl
import threading

import pytest
import trustme
from pytest_httpserver import HTTPServer

from components.checks.runner import run_batch
from components.models import CheckKind, Verdict
from tests.components.factories import HealthCheckFactory


@pytest.fixture
def rebinding_dns(monkeypatch):
    """rebinding_dns(name, first, then) -> the list of names asked for: `name` resolves to
    `first` once, to `then` afterwards; other names as usual."""
    real = socket.getaddrinfo
    asked = []

    def install(name, first, then):
        def getaddrinfo(host, port, *args, **kwargs):
            if isinstance(host, bytes):  # anyio asks in IDNA bytes
                host = host.decode()
            if host != name:
                return real(host, port, *args, **kwargs)
            asked.append(host)
            address = first if len(asked) == 1 else then
            return real(address, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        return asked

    return install


@pytest.fixture
def ca():
    return trustme.CA()


@pytest.fixture
def https_server(ca):
    certificate = ca.issue_cert("api.rebind.test")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    server = HTTPServer(host="127.0.0.1", ssl_context=context)
    server.start()
    yield server
    server.clear()
    server.stop()


def check(kind, **fields):
    return HealthCheckFactory.build(kind=kind, **fields)


@pytest.mark.parametrize(
    ("kind", "path", "fields"),
    [
        (CheckKind.HTTP, "/health", {}),
        (
            CheckKind.PROMETHEUS,
            "/api/v1/query",
            {"query": "up", "comparison": ">", "threshold": 1.0},
        ),
        (CheckKind.UPSTREAM, "/api/v2/components.json", {"upstream_component": "API"}),
    ],
)
def test_http_kinds_connect_to_the_address_they_vetted(
    settings, httpserver, rebinding_dns, kind, path, fields
):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True
    httpserver.expect_request(path).respond_with_json(
        {
            "status": "success",
            "data": {"resultType": "vector", "result": []},
            "components": [{"id": "x", "name": "API", "status": "operational"}],
        }
    )
    # 127.0.0.2 is loopback too (vetted alike), but nothing listens there.
    asked = rebinding_dns("api.rebind.test", "127.0.0.1", "127.0.0.2")
    url = f"http://api.rebind.test:{httpserver.port}"
    [outcome] = run_batch(
        [check(kind, url=url + ("/health" if kind == CheckKind.HTTP else ""), **fields)]
    )
    assert outcome.verdict == Verdict.UP, outcome.error
    assert asked == ["api.rebind.test"]
    assert len(httpserver.log) == 1


def test_a_name_rebound_to_a_private_address_after_the_guard_is_never_connected_to(
    settings, httpserver, rebinding_dns
):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = False
    httpserver.expect_request("/health").respond_with_data("ok")
    # A public answer first; the private one, had it been asked for, would reach the server.
    asked = rebinding_dns("api.rebind.test", "1.1.1.1", "127.0.0.1")
    url = f"http://api.rebind.test:{httpserver.port}/health"
    [outcome] = run_batch([check(CheckKind.HTTP, url=url, timeout=1.0)])
    assert outcome.verdict == Verdict.DOWN
    assert asked == ["api.rebind.test"]
    assert httpserver.log == []


def test_a_name_resolving_to_a_refused_address_is_never_connected_to(
    settings, httpserver, rebinding_dns
):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = False
    httpserver.expect_request("/health").respond_with_data("ok")
    asked = rebinding_dns("api.rebind.test", "127.0.0.1", "127.0.0.1")
    [outcome] = run_batch(
        [check(CheckKind.HTTP, url=f"http://api.rebind.test:{httpserver.port}/health")]
    )
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error.startswith("Refused: api.rebind.test: 127.0.0.1 is a private")
    assert asked == ["api.rebind.test"]
    assert httpserver.log == []


def test_https_keeps_sni_and_verification_for_the_name_while_connecting_to_the_address(
    settings, tmp_path, ca, https_server, rebinding_dns
):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    settings.BEACON_CHECKS_CA_BUNDLE = str(bundle)
    https_server.expect_request("/health").respond_with_data("ok")
    asked = rebinding_dns("api.rebind.test", "127.0.0.1", "127.0.0.2")
    good = check(CheckKind.HTTP, url=f"https://api.rebind.test:{https_server.port}/health")
    [outcome] = run_batch([good])
    assert outcome.verdict == Verdict.UP, outcome.error
    assert asked == ["api.rebind.test"]
    # The certificate names api.rebind.test: another name at the same address is refused.
    rebinding_dns("other.rebind.test", "127.0.0.1", "127.0.0.1")
    wrong = check(CheckKind.HTTP, url=f"https://other.rebind.test:{https_server.port}/health")
    [outcome] = run_batch([wrong])
    assert outcome.verdict == Verdict.DOWN
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.error


def test_tcp_checks_connect_to_the_address_they_vetted(settings, rebinding_dns):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True
    with socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler) as server:
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        asked = rebinding_dns("db.rebind.test", "127.0.0.1", "127.0.0.2")
        [outcome] = run_batch(
            [check(CheckKind.TCP, url="", host="db.rebind.test", port=server.server_address[1])]
        )
        server.shutdown()
    assert outcome.verdict == Verdict.UP, outcome.error
    assert asked == ["db.rebind.test"]

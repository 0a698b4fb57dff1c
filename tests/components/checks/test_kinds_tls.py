"""TLS certificate checks against a real TLS server on 127.0.0.1, with trustme certificates.

The check trusts the test CA the way a deployment with an internal PKI would: through
CHECKS_CA_BUNDLE (settings.BEACON_CHECKS_CA_BUNDLE).
"""

import socketserver
import ssl
import threading
from datetime import UTC, datetime, timedelta

import pytest
import trustme

from components.checks import KINDS
from components.checks.runner import run_batch
from components.checks.services import check_run_now
from components.models import CheckKind, ComponentStatus, Verdict
from tests.components.factories import ComponentFactory, HealthCheckFactory


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(autouse=True)
def trust_the_test_ca(settings, ca, tmp_path):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True
    bundle = tmp_path / "internal-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    settings.BEACON_CHECKS_CA_BUNDLE = str(bundle)


@pytest.fixture
def serve():
    """serve(configure) -> port of a TLS server whose context `configure` sets up.

    The server records the SNI name each client sent in `serve.names`.
    """
    servers = []
    names = []

    def start(configure):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        configure(context)
        context.sni_callback = lambda connection, name, _: names.append(name)

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                self.request.settimeout(5)
                try:
                    with context.wrap_socket(self.request, server_side=True) as tls:
                        tls.recv(1)  # until the check hangs up
                except OSError:  # the check refused the certificate
                    pass

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    start.names = names
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def tls_check(port, **fields):
    fields.setdefault("host", "localhost")
    return HealthCheckFactory.build(kind=CheckKind.TLS, url="", port=port, **fields)


def run(check):
    [outcome] = run_batch([check])
    return outcome


def test_a_valid_certificate_far_from_expiry_is_up(ca, serve):
    port = serve(ca.issue_cert("localhost", "127.0.0.1").configure_cert)
    outcome = run(tls_check(port))
    assert outcome.verdict == Verdict.UP and outcome.error == ""
    assert outcome.latency_ms > 0
    assert serve.names == ["localhost"]  # the host name was sent as SNI


def test_a_certificate_for_an_ip_address_is_checked_against_it(ca, serve):
    port = serve(ca.issue_cert("127.0.0.1").configure_cert)
    assert run(tls_check(port, host="127.0.0.1")).verdict == Verdict.UP


def test_a_certificate_expiring_within_the_warning_days_is_degraded(ca, serve):
    not_after = datetime.now(UTC) + timedelta(days=2, hours=1)
    port = serve(ca.issue_cert("localhost", not_after=not_after).configure_cert)
    outcome = run(tls_check(port, expiry_warning_days=14))
    assert outcome.verdict == Verdict.DEGRADED
    assert outcome.error == f"Certificate expires in 2 days, on {not_after.date().isoformat()}"

    assert run(tls_check(port, expiry_warning_days=2)).verdict == Verdict.UP


def test_a_certificate_expiring_today_says_so(ca, serve):
    not_after = datetime.now(UTC) + timedelta(hours=3)
    port = serve(ca.issue_cert("localhost", not_after=not_after).configure_cert)
    outcome = run(tls_check(port, expiry_warning_days=1))
    assert outcome.verdict == Verdict.DEGRADED
    assert outcome.error.startswith("Certificate expires within a day, on ")


def test_an_expired_certificate_is_down(ca, serve):
    now = datetime.now(UTC)
    cert = ca.issue_cert(
        "localhost", not_before=now - timedelta(days=90), not_after=now - timedelta(days=1)
    )
    outcome = run(tls_check(serve(cert.configure_cert)))
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error == "Invalid certificate: certificate has expired"


def test_a_self_signed_certificate_is_down(serve, tmp_path):
    stranger = trustme.CA()  # its own certificate, served as the server's: self-signed
    stranger.cert_pem.write_to_path(str(tmp_path / "cert.pem"))
    stranger.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    port = serve(
        lambda context: context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    )
    outcome = run(tls_check(port))
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error == "Invalid certificate: self-signed certificate"


def test_a_chain_to_an_untrusted_ca_is_down(serve):
    port = serve(trustme.CA().issue_cert("localhost").configure_cert)
    outcome = run(tls_check(port))
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error == "Invalid certificate: unable to get local issuer certificate"


def test_the_internal_ca_is_trusted_only_through_the_bundle_setting(ca, serve, settings):
    port = serve(ca.issue_cert("localhost").configure_cert)
    settings.BEACON_CHECKS_CA_BUNDLE = ""
    outcome = run(tls_check(port))
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error == "Invalid certificate: unable to get local issuer certificate"


def test_a_certificate_for_another_host_name_is_down(ca, serve):
    port = serve(ca.issue_cert("other.acme.test").configure_cert)
    outcome = run(tls_check(port))
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error == (
        "Invalid certificate: Hostname mismatch, certificate is not valid for 'localhost'."
    )


def test_a_port_that_does_not_speak_tls_is_down():
    class PlainHttp(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.recv(1024)
            self.request.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), PlainHttp) as server:
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        outcome = run(tls_check(server.server_address[1]))
        server.shutdown()
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error == "TLS handshake failed: wrong version number"


def test_a_private_tls_target_is_refused_unless_allowed(ca, serve, settings):
    port = serve(ca.issue_cert("localhost").configure_cert)
    settings.BEACON_CHECKS_ALLOW_PRIVATE = False
    outcome = run(tls_check(port, host="127.0.0.1"))
    assert outcome.verdict == Verdict.DOWN
    assert "127.0.0.1 is a private, loopback or reserved address" in outcome.error
    assert serve.names == []


@pytest.mark.django_db
def test_an_expiring_certificate_shows_the_component_as_degraded(ca, serve):
    not_after = datetime.now(UTC) + timedelta(days=5)
    port = serve(ca.issue_cert("localhost", not_after=not_after).configure_cert)
    check = HealthCheckFactory(
        component=ComponentFactory(name="Web"),
        kind=CheckKind.TLS,
        url="",
        host="localhost",
        port=port,
        failures_before_down=1,
    )
    check_run_now(check=check)
    check.refresh_from_db()
    check.component.refresh_from_db()
    assert check.verdict == Verdict.DEGRADED
    assert check.last_error.startswith("Certificate expires in 4 days")
    assert check.component.status == ComponentStatus.DEGRADED_PERFORMANCE


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"host": "acme.test", "port": None}, {}),
        ({"host": "acme.test", "port": 8443}, {}),
        ({"host": "", "port": 443}, {"host": "This check kind needs it."}),
        (
            {"host": "acme.test", "port": 65536},
            {"port": "A port between 1 and 65535 (empty for 443)."},
        ),
    ],
)
def test_a_tls_check_needs_a_host_and_a_valid_port(fields, errors):
    check = HealthCheckFactory.build(kind=CheckKind.TLS, url="", **fields)
    assert KINDS[CheckKind.TLS].validate(check) == errors

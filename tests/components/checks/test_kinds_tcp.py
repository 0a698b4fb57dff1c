"""TCP checks against real listeners on 127.0.0.1."""

import queue
import socket
import socketserver
import threading

import pytest

from components.checks import KINDS
from components.checks.runner import run_batch
from components.models import CheckKind, Verdict
from tests.components.factories import HealthCheckFactory


@pytest.fixture(autouse=True)
def allow_local_targets(settings):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True


@pytest.fixture
def listener():
    """A real TCP server on 127.0.0.1 that accepts and closes; yields its port and the peers."""
    accepted = queue.Queue()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            accepted.put(self.client_address)

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        yield server.server_address[1], accepted
        server.shutdown()


@pytest.fixture
def closed_port():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def tcp_check(**fields):
    return HealthCheckFactory.build(kind=CheckKind.TCP, url="", **fields)


def test_a_listening_port_is_up_with_its_connect_time(listener):
    port, accepted = listener
    [outcome] = run_batch([tcp_check(host="127.0.0.1", port=port)])
    assert outcome.verdict == Verdict.UP and outcome.error == ""
    assert 0 < outcome.latency_ms < 1000
    assert accepted.get(timeout=2)[0] == "127.0.0.1"


def test_a_name_is_resolved_and_connected_to(listener):
    port, accepted = listener
    # localhost may resolve to ::1 first, where nothing listens: the next address is tried.
    [outcome] = run_batch([tcp_check(host="localhost", port=port)])
    assert outcome.verdict == Verdict.UP
    assert accepted.get(timeout=2)[0] == "127.0.0.1"


def test_a_closed_port_is_down_connection_refused(closed_port):
    [outcome] = run_batch([tcp_check(host="127.0.0.1", port=closed_port)])
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error == "Connection refused"


def test_an_unresolvable_name_is_down():
    [outcome] = run_batch([tcp_check(host="no-such-host.invalid", port=80)])
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error.startswith("Refused: cannot resolve no-such-host.invalid")


def test_a_private_port_is_refused_unless_allowed(listener, settings):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = False
    port, accepted = listener
    [outcome] = run_batch([tcp_check(host="127.0.0.1", port=port)])
    assert outcome.verdict == Verdict.DOWN
    assert "127.0.0.1 is a private, loopback or reserved address" in outcome.error
    assert accepted.empty()


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"host": "db.internal", "port": 5432}, {}),
        ({"host": "", "port": 5432}, {"host": "This check kind needs it."}),
        ({"host": "db.internal", "port": None}, {"port": "This check kind needs it."}),
        ({"host": "db.internal", "port": 70000}, {"port": "A port between 1 and 65535."}),
        ({"host": "db.internal", "port": 0}, {"port": "A port between 1 and 65535."}),
    ],
)
def test_a_tcp_check_needs_a_host_and_a_valid_port(fields, errors):
    assert KINDS[CheckKind.TCP].validate(tcp_check(**fields)) == errors

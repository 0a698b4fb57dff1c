"""DNS checks against a real DNS server (dnslib) on a random UDP port of 127.0.0.1."""

import socket
import threading
import time

import pytest
from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, TXT, A
from dnslib.server import BaseResolver, DNSServer

from components.checks import KINDS
from components.checks.runner import run_batch
from components.models import CheckKind, Verdict
from tests.components.factories import HealthCheckFactory

ZONE = {
    ("api.acme.test.", "A"): [A("192.0.2.10"), A("192.0.2.11")],
    ("api.acme.test.", "AAAA"): [AAAA("2001:db8::10")],
    ("www.acme.test.", "CNAME"): [CNAME("Edge.CDN.example.")],
    ("acme.test.", "MX"): [MX("mail.acme.test.", 10)],
    ("acme.test.", "TXT"): [TXT("v=spf1 include:_spf.acme.test -all"), TXT("token=AbC123")],
}


class FixedZone(BaseResolver):
    """Answers ZONE; NXDOMAIN for names it does not hold, an empty answer for other types."""

    def __init__(self):
        self.questions = []

    def resolve(self, request, handler):
        reply = request.reply()
        name, qtype = str(request.q.qname), QTYPE[request.q.qtype]
        self.questions.append((name, qtype))
        if not any(known.lower() == name.lower() for known, _ in ZONE):
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for known, rtype in ZONE:
            if known.lower() == name.lower() and rtype == qtype:
                for rdata in ZONE[known, rtype]:
                    reply.add_answer(RR(name, getattr(QTYPE, qtype), rdata=rdata, ttl=60))
        return reply


@pytest.fixture(autouse=True)
def allow_local_targets(settings):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True


@pytest.fixture
def dns_server():
    zone = FixedZone()
    udp = DNSServer(zone, address="127.0.0.1", port=0).server
    threading.Thread(target=udp.serve_forever, args=(0.05,), daemon=True).start()
    zone.address = f"127.0.0.1:{udp.server_address[1]}"
    yield zone
    udp.shutdown()
    udp.server_close()


def dns_check(server, **fields):
    return HealthCheckFactory.build(kind=CheckKind.DNS, url="", resolver=server.address, **fields)


def run(check):
    [outcome] = run_batch([check])
    return outcome


def test_an_a_record_with_the_expected_addresses_is_up(dns_server):
    outcome = run(dns_check(dns_server, host="api.acme.test", expected_values=["192.0.2.11"]))
    assert outcome.verdict == Verdict.UP and outcome.error == ""
    assert outcome.latency_ms > 0
    assert dns_server.questions == [("api.acme.test.", "A")]


def test_any_answer_is_up_when_nothing_is_expected(dns_server):
    assert run(dns_check(dns_server, host="api.acme.test")).verdict == Verdict.UP


def test_an_a_record_without_an_expected_address_is_down_and_says_what_it_found(dns_server):
    outcome = run(
        dns_check(dns_server, host="api.acme.test", expected_values=["192.0.2.10", "192.0.2.99"])
    )
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error == "Expected 192.0.2.99; api.acme.test A is 192.0.2.10, 192.0.2.11"


def test_an_ipv6_address_matches_however_it_is_written(dns_server):
    check = dns_check(
        dns_server,
        host="api.acme.test",
        record_type="AAAA",
        expected_values=["2001:0db8:0000:0000:0000:0000:0000:0010"],
    )
    assert run(check).verdict == Verdict.UP


def test_a_name_that_does_not_exist_is_down(dns_server):
    outcome = run(dns_check(dns_server, host="gone.acme.test"))
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error == "No such name: gone.acme.test (NXDOMAIN)"


def test_a_name_without_a_record_of_the_type_is_down(dns_server):
    outcome = run(dns_check(dns_server, host="www.acme.test", record_type="A"))
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error == "No A record for www.acme.test"


def test_names_match_without_the_trailing_dot_and_in_any_case(dns_server):
    cname = dns_check(
        dns_server, host="www.acme.test", record_type="CNAME", expected_values=["edge.cdn.example"]
    )
    mx_host = dns_check(
        dns_server, host="acme.test", record_type="mx", expected_values=["MAIL.acme.test."]
    )
    mx_full = dns_check(
        dns_server, host="acme.test", record_type="MX", expected_values=["10 mail.acme.test"]
    )
    mx_wrong = dns_check(
        dns_server, host="acme.test", record_type="MX", expected_values=["20 mail.acme.test"]
    )
    outcomes = run_batch([cname, mx_host, mx_full, mx_wrong])
    assert [o.verdict for o in outcomes] == [Verdict.UP, Verdict.UP, Verdict.UP, Verdict.DOWN]
    assert outcomes[3].error == "Expected 20 mail.acme.test; acme.test MX is 10 mail.acme.test."


def test_txt_records_are_compared_exactly(dns_server):
    present = dns_check(
        dns_server, host="acme.test", record_type="TXT", expected_values=["token=AbC123"]
    )
    other_case = dns_check(
        dns_server, host="acme.test", record_type="TXT", expected_values=["token=abc123"]
    )
    outcomes = run_batch([present, other_case])
    assert outcomes[0].verdict == Verdict.UP
    assert outcomes[1].verdict == Verdict.DOWN
    assert outcomes[1].error == (
        "Expected token=abc123; acme.test TXT is token=AbC123, v=spf1 include:_spf.acme.test -all"
    )


def test_a_resolver_that_does_not_answer_is_down_within_the_timeout():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # receives, never answers
        silent.bind(("127.0.0.1", 0))
        check = HealthCheckFactory.build(
            kind=CheckKind.DNS,
            url="",
            host="api.acme.test",
            resolver=f"127.0.0.1:{silent.getsockname()[1]}",
            timeout=0.5,
        )
        started = time.perf_counter()
        outcome = run(check)
        assert time.perf_counter() - started < 1.5
    assert outcome.verdict == Verdict.DOWN
    # dnspython's own deadline and the runner's are the same instant: either may say so.
    assert outcome.error in ("No DNS answer within 0.5 s", "No complete answer within 0.5 s")


def test_a_private_resolver_is_refused_unless_allowed(dns_server, settings):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = False
    outcome = run(dns_check(dns_server, host="api.acme.test"))
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error.startswith("Refused: resolver 127.0.0.1 is a private, loopback")
    assert dns_server.questions == []


def test_a_metadata_resolver_is_refused_even_when_private_targets_are_allowed(dns_server):
    check = dns_check(dns_server, host="api.acme.test")
    check.resolver = "169.254.169.254"
    outcome = run(check)
    assert outcome.error == "Refused: resolver 169.254.169.254 is a cloud metadata address"


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"host": "acme.test", "record_type": "MX", "resolver": "9.9.9.9"}, {}),
        ({"host": "acme.test", "resolver": "127.0.0.1:5353"}, {}),
        ({"host": "acme.test", "resolver": "[2001:db8::53]:5353"}, {}),
        ({"host": "acme.test", "resolver": "2001:db8::53"}, {}),
        ({"host": ""}, {"host": "This check kind needs it."}),
        ({"host": "acme.test", "record_type": "A6"}, {"record_type": "One of "}),
        ({"host": "acme.test", "resolver": "dns.google"}, {"resolver": "Not an IP address"}),
        ({"host": "acme.test", "resolver": "9.9.9.9:99999"}, {"resolver": "Not a port"}),
        ({"host": "a" * 64 + ".test"}, {"host": f"'{'a' * 64}.test' is not a valid host name"}),
        ({"host": "$(id).acme.test"}, {"host": "'$(id).acme.test' is not a valid host name"}),
        ({"host": "acme.test; reboot"}, {"host": "A host name has no spaces"}),
        ({"host": "_dmarc.acme.test"}, {}),
        ({"host": "acme.test."}, {}),
        ({"host": "bücher.example"}, {}),
        ({"host": "acme.test", "resolver": "169.254.169.254"}, {"resolver": "Refused: "}),
        (
            {"host": "acme.test", "resolver": "[::ffff:169.254.169.254]:53"},
            {"resolver": "Refused: "},
        ),
        ({"host": "acme.test", "expected_values": "192.0.2.1"}, {"expected_values": "A list"}),
    ],
)
def test_a_dns_check_validates_its_name_type_resolver_and_values(fields, errors):
    found = KINDS[CheckKind.DNS].validate(
        HealthCheckFactory.build(kind=CheckKind.DNS, url="", **fields)
    )
    assert found.keys() == errors.keys()
    for field, start in errors.items():
        assert found[field].startswith(start)

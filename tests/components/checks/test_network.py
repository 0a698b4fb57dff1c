"""The outbound address guard: what checks and webhooks may connect to."""

import pytest

from components.checks import KINDS
from components.checks.runner import run_batch
from components.models import CheckKind, Verdict
from statuspage.lib import network
from tests.components.factories import HealthCheckFactory

METADATA_FORMS = [
    "169.254.169.254",
    "::ffff:169.254.169.254",  # IPv4-mapped
    "::ffff:a9fe:a9fe",  # the same, in hex
    "::169.254.169.254",  # IPv4-compatible
    "64:ff9b::a9fe:a9fe",  # NAT64, well-known prefix
    "64:ff9b:1::a9fe:a9fe",  # NAT64, local-use prefix
    "2002:a9fe:a9fe::1",  # 6to4
    "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo, client 169.254.169.254
    "fd00:ec2::254",
    "100.100.100.200",
    "::ffff:100.100.100.200",
    "64:ff9b::6464:64c8",  # NAT64 of 100.100.100.200
    "169.254.170.2",
    "169.254.170.23",
]


@pytest.mark.parametrize("address", METADATA_FORMS)
@pytest.mark.parametrize("allow_private", [True, False, None])
def test_it_refuses_metadata_addresses_in_every_form_whatever_the_switches(
    settings, address, allow_private
):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True
    reason = network.refusal(address, allow_private=allow_private)
    assert reason is not None and "cloud metadata address" in reason


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "64:ff9b::7f00:1",  # NAT64 of loopback
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "2002:c0a8:0101::1",  # 6to4 of 192.168.1.1
        "::1",
        "fe80::1%eth0",
        "fc00::1",
    ],
)
def test_it_refuses_private_addresses_in_every_form_unless_allowed(address):
    reason = network.refusal(address, allow_private=False)
    assert reason is not None and "private, loopback or reserved" in reason
    assert network.refusal(address, allow_private=True) is None


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_it_allows_public_addresses_in_every_form(address):
    assert network.refusal(address, allow_private=False) is None


def test_a_refusal_names_the_ipv4_address_an_ipv6_one_embeds():
    reason = network.refusal("::ffff:169.254.169.254", allow_private=True)
    assert reason == "::ffff:a9fe:a9fe (169.254.169.254) is a cloud metadata address"


@pytest.mark.parametrize(
    "host", ["::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "::169.254.169.254"]
)
def test_a_check_of_a_metadata_address_in_ipv6_dress_is_refused_even_when_private_is_allowed(
    settings, host
):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True
    checks = [
        HealthCheckFactory.build(kind=CheckKind.TCP, url="", host=host, port=80),
        HealthCheckFactory.build(kind=CheckKind.HTTP, url=f"http://[{host}]/latest/meta-data/"),
    ]
    for outcome in run_batch(checks):
        assert outcome.verdict == Verdict.DOWN
        assert "cloud metadata address" in outcome.error
        assert outcome.error.startswith("Refused: ")


HOSTILE_HOSTS = [
    ("$(id)", "is not a valid host name"),
    ("`reboot`", "is not a valid host name"),
    ("api.acme.test;id", "is not a valid host name"),
    ("api.acme.test|nc", "is not a valid host name"),
    ("api.acme.test&", "is not a valid host name"),
    ("a b", "no spaces or control characters"),
    ("api.acme.test\n", "no spaces or control characters"),
    ("api\x00.acme.test", "no spaces or control characters"),
    ("api\u202e.acme.test", "no spaces or control characters"),  # right-to-left override
    ("-api.acme.test", "is not a valid host name"),
    ("api..acme.test", "is not a valid host name"),
    ("*.acme.test", "is not a valid host name"),
    ("a" * 64 + ".test", "is not a valid host name"),
    (("a" * 60 + ".") * 5 + "test", "at most 253 characters"),
    ("2852039166", "write IPv4 as four decimal numbers"),  # 169.254.169.254
    ("0xA9FEA9FE", "write IPv4 as four decimal numbers"),
    ("0251.0376.0251.0376", "write IPv4 as four decimal numbers"),
    ("169.254.43518", "write IPv4 as four decimal numbers"),
    ("127.1", "write IPv4 as four decimal numbers"),
    ("[::1]", "without brackets"),
    ("fe80::1%eth0", "without a zone"),
]


@pytest.mark.parametrize(("host", "error"), HOSTILE_HOSTS)
def test_it_refuses_what_is_not_a_host_name_or_an_ip_address(host, error):
    assert error in network.host_problem(host)


@pytest.mark.parametrize(
    "host",
    [
        "api.acme.test",
        "API.Acme.Test.",
        "_dmarc.acme.test",
        "localhost",
        "bücher.example",
        "xn--bcher-kva.example",
        "192.0.2.1",
        "2001:db8::1",
        "db-1.internal",
    ],
)
def test_it_accepts_host_names_and_ip_addresses(host):
    assert network.host_problem(host) is None


@pytest.mark.parametrize("kind", [CheckKind.TCP, CheckKind.TLS, CheckKind.DNS])
@pytest.mark.parametrize(("host", "error"), HOSTILE_HOSTS)
def test_tcp_tls_and_dns_checks_refuse_hostile_hosts(kind, host, error):
    check = HealthCheckFactory.build(kind=kind, url="", host=host, port=443)
    assert error in KINDS[kind].validate(check)["host"]


@pytest.mark.parametrize("kind", [CheckKind.TCP, CheckKind.TLS])
@pytest.mark.parametrize(
    "host", ["169.254.169.254", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "fd00:ec2::254"]
)
def test_tcp_and_tls_checks_refuse_metadata_addresses_on_save_even_when_private_is_allowed(
    settings, kind, host
):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True
    check = HealthCheckFactory.build(kind=kind, url="", host=host, port=443)
    assert "cloud metadata address" in KINDS[kind].validate(check)["host"]


def test_private_addresses_are_refused_on_save_unless_allowed(settings):
    check = HealthCheckFactory.build(kind=CheckKind.TCP, url="", host="10.0.0.5", port=5432)
    settings.BEACON_CHECKS_ALLOW_PRIVATE = False
    assert "CHECKS_ALLOW_PRIVATE" in KINDS[CheckKind.TCP].validate(check)["host"]
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True
    assert KINDS[CheckKind.TCP].validate(check) == {}


@pytest.mark.parametrize("kind", [CheckKind.HTTP, CheckKind.PROMETHEUS, CheckKind.UPSTREAM])
@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://$(id)/health", "is not a valid host name"),
        ("http://api.acme.test /health", "no spaces or control characters"),
        ("http://api.acme.test/\r\nX-Injected: 1", "no spaces or control characters"),
        ("http://2852039166/latest/meta-data/", "write IPv4 as four decimal numbers"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("http://[::ffff:169.254.169.254]/", "cloud metadata address"),
        ("http://[64:ff9b::a9fe:a9fe]/", "cloud metadata address"),
        ("http://api.acme.test:99999/", "Not a valid URL"),
        ("http://[::1/", "Not a valid URL"),
        ("http:///health", "The URL needs a host"),
    ],
)
def test_url_checks_refuse_hostile_urls_on_save(settings, kind, url, error):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True
    check = HealthCheckFactory.build(
        kind=kind, url=url, query="up", comparison=">", threshold=1, upstream_component="API"
    )
    assert error in KINDS[kind].validate(check)["url"]


@pytest.mark.parametrize(
    "host", ["2852039166", "0xA9FEA9FE", "0251.0376.0251.0376", "169.254.43518"]
)
def test_a_saved_check_naming_metadata_in_integer_form_is_still_refused_when_run(settings, host):
    # Rows saved before hosts were validated: the run-time guard sees the resolved address.
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True
    checks = [
        HealthCheckFactory.build(kind=CheckKind.TCP, url="", host=host, port=80),
        HealthCheckFactory.build(kind=CheckKind.HTTP, url=f"http://{host}/latest/meta-data/"),
    ]
    tcp, http = run_batch(checks)
    assert tcp.verdict == Verdict.DOWN
    assert "169.254.169.254 is a cloud metadata address" in tcp.error
    assert http.verdict == Verdict.DOWN  # refused by the guard, or by httpx's URL parser
    assert "metadata" in http.error or "Invalid IPv4 address" in http.error

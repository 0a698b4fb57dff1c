"""The outbound address guard: what checks and webhooks may connect to."""

import pytest

from components.checks import network
from components.checks.runner import run_batch
from components.models import CheckKind, Verdict
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

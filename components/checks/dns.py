"""DNS: a query for one record type of a name, optionally of a chosen resolver.

Down when the name does not exist (NXDOMAIN), has no record of the type, or no resolver
answers. With `expected_values`, every expected value must be among the answers (extra
answers are fine: a round-robin may add addresses); without them, any answer is up.

Values are compared as DNS means them: addresses in their canonical form (an IPv6 address
however written), names without the trailing dot and in any case (CNAME, NS, PTR, the host
of MX and SRV records: "mail.example.com" matches "10 Mail.Example.com."; the full
"10 mail.example.com" works too). TXT records are compared exactly, strings joined, as
their content is data (verification tokens are case-sensitive).

`resolver` is an IP address, with a port when not 53 ("192.0.2.53:5353", "[2001:db8::53]:53");
it must be an address checks may connect to (network.refusal). Without it, the system's
resolvers answer: they are the deployment's own, not a target, so they are not refused.
"""

import ipaddress
import time

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver
import httpx
from dns.rdata import Rdata
from dns.rdtypes.txtbase import TXTBase

from components.checks.base import CheckKindRunner
from components.checks.outcome import Outcome
from components.models import HealthCheck
from statuspage.lib.network import TargetRefused, host_problem, refusal

RECORD_TYPES = ("A", "AAAA", "CAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT")
# Record types whose last field is a host name: it alone may be expected.
HOST_LAST = ("MX", "SRV")


class DnsCheck(CheckKindRunner):
    required = ("host", "record_type")

    def validate(self, check: HealthCheck) -> dict[str, str]:
        errors = super().validate(check)
        if check.record_type and check.record_type.upper() not in RECORD_TYPES:
            errors["record_type"] = f"One of {', '.join(RECORD_TYPES)}."
        problem = check.host and host_problem(check.host)
        if problem:
            errors["host"] = problem
        elif check.host:
            try:
                dns.name.from_text(check.host)
            except dns.exception.DNSException as error:
                errors["host"] = f"Not a DNS name: {error}"
        if check.resolver:
            try:
                address, _ = parse_resolver(check.resolver)
            except ValueError as error:
                errors["resolver"] = str(error)
            else:
                reason = refusal(address)
                if reason:
                    errors["resolver"] = f"Refused: {reason}."
        if not isinstance(check.expected_values, list) or not all(
            isinstance(value, str) for value in check.expected_values
        ):
            errors["expected_values"] = 'A list of values, e.g. ["192.0.2.1"].'
        return errors

    async def run(self, check: HealthCheck, client: httpx.AsyncClient) -> Outcome:
        record_type = check.record_type.upper()
        resolver = dns.asyncresolver.Resolver(configure=not check.resolver)
        if check.resolver:
            address, port = parse_resolver(check.resolver)
            reason = refusal(address)
            if reason:
                raise TargetRefused(f"resolver {reason}")
            resolver.nameservers = [address]
            resolver.port = port
        resolver.lifetime = check.timeout
        started = time.perf_counter()
        try:
            answer = await resolver.resolve(check.host, record_type, search=False)
        except dns.resolver.NXDOMAIN:
            return Outcome.down(f"No such name: {check.host} (NXDOMAIN)")
        except dns.resolver.NoAnswer:
            return Outcome.down(f"No {record_type} record for {check.host}")
        except dns.resolver.NoNameservers as error:
            return Outcome.down(f"No resolver answered: {error}")
        except dns.resolver.LifetimeTimeout:
            return Outcome.down(f"No DNS answer within {check.timeout:g} s")
        latency_ms = (time.perf_counter() - started) * 1000
        answers = list(answer)
        found: set[str] = set()
        for rdata in answers:
            found |= forms(record_type, rdata)
        missing = [
            value for value in check.expected_values if normalise(record_type, value) not in found
        ]
        if missing:
            shown = ", ".join(sorted(display(record_type, rdata) for rdata in answers))
            return Outcome.down(
                f"Expected {', '.join(missing)}; {check.host} {record_type} is {shown}",
                latency_ms=latency_ms,
            )
        return Outcome.up(latency_ms=latency_ms)


def parse_resolver(text: str) -> tuple[str, int]:
    """(address, port) from "192.0.2.53", "192.0.2.53:5353", "2001:db8::53", "[2001:db8::53]:53"."""
    text = text.strip()
    address, port = text, "53"
    if text.startswith("["):
        address, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif text.count(":") == 1:
        address, port = text.split(":")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"Not an IP address: {address!r}.") from None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"Not a port: {port!r}.")
    return address, int(port)


def display(record_type: str, rdata: Rdata) -> str:
    if record_type == "TXT" and isinstance(rdata, TXTBase):
        return b"".join(rdata.strings).decode(errors="replace")
    return rdata.to_text()


def forms(record_type: str, rdata: Rdata) -> set[str]:
    """The ways an expected value may name this answer, normalised."""
    text = normalise(record_type, display(record_type, rdata))
    if record_type in HOST_LAST:
        return {text, text.rsplit(" ", 1)[-1]}
    return {text}


def normalise(record_type: str, value: str) -> str:
    if record_type == "TXT":
        return value
    value = value.strip()
    if record_type in ("A", "AAAA"):
        try:
            return ipaddress.ip_address(value).compressed
        except ValueError:
            return value
    return " ".join(part.rstrip(".").lower() for part in value.split())

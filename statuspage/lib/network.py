"""Where checks may connect: public addresses, and private ones only when allowed.

A status page's checks are configured by staff, but an admin account should not turn the
workers into a scanner of the network they run in, nor read the cloud metadata service.
Loopback, private, link-local, reserved and metadata addresses are refused unless the
deployment allows them (CHECKS_ALLOW_PRIVATE=true, for pages that check internal services);
metadata addresses are refused even then. Subscriber webhooks use the same rules with their
own switch (`allow_private=settings.BEACON_WEBHOOKS_ALLOW_PRIVATE`).
"""

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from typing import TypeAlias
from urllib.parse import urlsplit

from django.conf import settings

# Cloud instance metadata: credentials live there. Never a health check's business, nor a
# webhook's, whatever the allow-private switches say.
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, DigitalOcean…
    ipaddress.ip_address("169.254.170.2"),  # AWS ECS task credentials
    ipaddress.ip_address("169.254.170.23"),  # AWS EKS pod identity
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("fd00:ec2::23"),  # AWS EKS pod identity over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("192.0.0.192"),  # Oracle Cloud (classic)
}
# IPv6 prefixes that carry an IPv4 address in their last 32 bits, which a translator (NAT64)
# or the host itself may reach: an address in them is judged as the IPv4 address it embeds.
NAT64_PREFIXES = (
    ipaddress.ip_network("64:ff9b::/96"),  # RFC 6052, well-known
    ipaddress.ip_network("64:ff9b:1::/48"),  # RFC 8215, local use
)


class TargetRefused(Exception):
    """The target resolves to an address checks may not connect to."""


def embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address stands for: IPv4-mapped (::ffff:a.b.c.d),
    IPv4-compatible (::a.b.c.d), NAT64, 6to4 and Teredo forms."""
    if ip.version == 4:
        return []
    assert isinstance(ip, ipaddress.IPv6Address)
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    last32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # ::a.b.c.d, but not :: nor ::1
        found.append(last32)
    if any(ip in prefix for prefix in NAT64_PREFIXES):
        found.append(last32)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def refusal(address: str, *, allow_private: bool | None = None) -> str | None:
    """Why checks may not connect to this IP address, or None when they may.

    `allow_private` None follows CHECKS_ALLOW_PRIVATE; other callers pass their own switch.
    An IPv6 address embedding an IPv4 one is refused when either is.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    embedded = embedded_ipv4(ip)
    forms = [ip, *embedded]
    shown = f"{ip} ({', '.join(map(str, embedded))})" if embedded else str(ip)
    if any(form in METADATA_ADDRESSES for form in forms):
        return f"{shown} is a cloud metadata address"
    if allow_private is None:
        allow_private = settings.BEACON_CHECKS_ALLOW_PRIVATE
        hint = " (set CHECKS_ALLOW_PRIVATE=true to check internal services)"
    else:
        hint = ""
    if allow_private:
        return None
    # Python counts multicast as global; nothing answers an HTTP request there.
    if not all(form.is_global and not form.is_multicast for form in forms):
        return f"{shown} is a private, loopback or reserved address{hint}"
    return None


async def resolve(host: str, port: int, *, allow_private: bool | None = None) -> list[str]:
    """The addresses `host` resolves to, all of them allowed; TargetRefused otherwise."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise TargetRefused(f"cannot resolve {host}: {error.strerror}") from error
    return _allowed(host, infos, allow_private=allow_private)


def resolve_blocking(host: str, port: int, *, allow_private: bool | None = None) -> list[str]:
    """`resolve` for code outside an event loop (a Celery task posting a webhook)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise TargetRefused(f"cannot resolve {host}: {error.strerror}") from error
    return _allowed(host, infos, allow_private=allow_private)


# One answer of getaddrinfo, as typeshed has it; the address is its last item's first.
_AddressInfo: TypeAlias = tuple[
    socket.AddressFamily,
    socket.SocketKind,
    int,
    str,
    tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes],
]


def _allowed(
    host: str, infos: Iterable[_AddressInfo], *, allow_private: bool | None = None
) -> list[str]:
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        reason = refusal(address, allow_private=allow_private)
        if reason:
            raise TargetRefused(f"{host}: {reason}")
    return addresses


# What staff may type as a target, checked when a check or a webhook is saved: a DNS name
# (international ones too) or an IP address, nothing a resolver or a log would read another
# way. RFC 1035's lengths; underscores allowed, as in _dmarc.example.com or internal names.
MAX_HOST_LENGTH = 253
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?", re.IGNORECASE)
# 2852039166, 0xA9FEA9FE, 0251.0376.0251.0376, 169.254.43518: IPv4 as inet_aton reads it.
_NUMERIC = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}\.?", re.IGNORECASE)


def host_problem(host: str) -> str | None:
    """What is wrong with `host` as a DNS name or an IP address; None when nothing is."""
    if not host:
        return "A host name or an IP address."
    if any(character.isspace() or not character.isprintable() for character in host):
        return "A host name has no spaces or control characters."
    if "%" in host:
        return "An IP address without a zone (%…)."
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return None
    if host.startswith("["):
        return "An IPv6 address without brackets, e.g. 2001:db8::1."
    if _NUMERIC.fullmatch(host):
        return f"{host!r} is not an IP address: write IPv4 as four decimal numbers (a.b.c.d)."
    try:
        name = host.removesuffix(".").encode("idna").decode("ascii")
    except UnicodeError:
        return f"{host!r} is not a valid host name."
    if len(name) > MAX_HOST_LENGTH:
        return f"A host name has at most {MAX_HOST_LENGTH} characters."
    if not all(_LABEL.fullmatch(label) for label in name.split(".")):
        return (
            f"{host!r} is not a valid host name: letters, digits and hyphens between dots, "
            "e.g. api.example.com."
        )
    return None


def target_problem(host: str, *, allow_private: bool | None = None) -> str | None:
    """host_problem, and for an IP address whether it may be connected to (see refusal).
    Names are not resolved here: they may resolve differently where checks run."""
    problem = host_problem(host)
    if problem:
        return problem
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    reason = refusal(host, allow_private=allow_private)
    return f"Refused: {reason}." if reason else None


NOT_HTTP = "Use an http:// or https:// URL."


def url_problem(url: str, *, allow_private: bool | None = None) -> str | None:
    """What is wrong with `url` as an http(s) URL to connect to; None when nothing is."""
    if any(character.isspace() or not character.isprintable() for character in url):
        return "A URL has no spaces or control characters (encode them, e.g. %20)."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError as error:
        return f"Not a valid URL: {error}."
    if parts.scheme not in ("http", "https"):
        return NOT_HTTP
    if not parts.hostname:
        return "The URL needs a host, e.g. https://api.example.com/health."
    return target_problem(parts.hostname, allow_private=allow_private)

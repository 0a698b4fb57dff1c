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
import socket

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
    if not all(form.is_global for form in forms):
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


def _allowed(host: str, infos, *, allow_private: bool | None = None) -> list[str]:
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        reason = refusal(address, allow_private=allow_private)
        if reason:
            raise TargetRefused(f"{host}: {reason}")
    return addresses

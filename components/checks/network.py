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

# Cloud instance metadata: credentials live there. Never a health check's business.
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
}


class TargetRefused(Exception):
    """The target resolves to an address checks may not connect to."""


def refusal(address: str, *, allow_private: bool | None = None) -> str | None:
    """Why checks may not connect to this IP address, or None when they may.

    `allow_private` None follows CHECKS_ALLOW_PRIVATE; other callers pass their own switch.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip in METADATA_ADDRESSES:
        return f"{ip} is a cloud metadata address"
    if allow_private is None:
        allow_private = settings.BEACON_CHECKS_ALLOW_PRIVATE
        hint = " (set CHECKS_ALLOW_PRIVATE=true to check internal services)"
    else:
        hint = ""
    if allow_private:
        return None
    if not ip.is_global:
        return f"{ip} is a private, loopback or reserved address{hint}"
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

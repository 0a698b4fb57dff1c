"""TLS certificate: a verified handshake, then how long until the certificate expires.

The certificate is verified as any client would (the system's CAs, plus CHECKS_CA_BUNDLE for
an internal PKI; the host name sent as SNI and matched): an untrusted chain, a host name the
certificate does not cover or an expired certificate is down, with OpenSSL's reason. A valid
certificate that expires within `expiry_warning_days` is degraded, so there is time to renew.
"""

import functools
import ssl
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from django.conf import settings

from components.checks.base import CheckKindRunner
from components.checks.outcome import Outcome
from components.checks.tcp import close, connect
from components.models import HealthCheck
from statuspage.lib.network import target_problem

DEFAULT_PORT = 443
DAY = 86400


class TlsCheck(CheckKindRunner):
    required = ("host",)

    def validate(self, check: HealthCheck) -> dict[str, str]:
        errors = super().validate(check)
        problem = check.host and target_problem(check.host)
        if problem:
            errors["host"] = problem
        if check.port is not None and not 1 <= check.port <= 65535:
            errors["port"] = "A port between 1 and 65535 (empty for 443)."
        return errors

    async def run(self, check: HealthCheck, client: httpx.AsyncClient) -> Outcome:
        started = time.perf_counter()
        try:
            _, writer = await connect(
                check.host,
                check.port or DEFAULT_PORT,
                ssl=ssl_context(),
                server_hostname=check.host,
            )
        except ssl.SSLCertVerificationError as error:
            return Outcome.down(
                f"Invalid certificate: {error.verify_message or error.reason}",
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        except ssl.SSLError as error:  # not TLS on that port, or no protocol in common
            reason = (error.reason or "").replace("_", " ").lower() or str(error)
            return Outcome.down(
                f"TLS handshake failed: {reason}",
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        latency_ms = (time.perf_counter() - started) * 1000
        certificate = writer.get_extra_info("peercert")
        await close(writer)
        return judge(check, certificate, now=time.time(), latency_ms=latency_ms)


def ssl_context() -> ssl.SSLContext:
    """Verification on, as a browser would; with the deployment's extra CAs when set."""
    return _context(settings.BEACON_CHECKS_CA_BUNDLE)


@functools.lru_cache(maxsize=4)
def _context(ca_bundle: str) -> ssl.SSLContext:
    # Built once per process: loading the system's CAs is file work on the event loop.
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    return context


def judge(
    check: HealthCheck, certificate: Mapping[str, Any], *, now: float, latency_ms: float
) -> Outcome:
    expires_at = ssl.cert_time_to_seconds(certificate["notAfter"])
    left = expires_at - now
    if left <= 0:  # verification refuses expired certificates; this is the instant after
        return Outcome.down("Certificate has expired", latency_ms=latency_ms)
    if left < check.expiry_warning_days * DAY:
        day = datetime.fromtimestamp(expires_at, UTC).date().isoformat()
        return Outcome.degraded(
            f"Certificate expires {_within(left)}, on {day}", latency_ms=latency_ms
        )
    return Outcome.up(latency_ms=latency_ms)


def _within(seconds: float) -> str:
    days = int(seconds // DAY)
    if days == 0:
        return "within a day"
    return f"in {days} day{'s' if days > 1 else ''}"

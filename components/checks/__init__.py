"""Health check kinds: one class per kind, registered here (see base.CheckKindRunner)."""

from components.checks.base import CheckKindRunner
from components.checks.dns import DnsCheck
from components.checks.heartbeat import HeartbeatCheck
from components.checks.http import HttpCheck
from components.checks.prometheus import PrometheusCheck
from components.checks.tcp import TcpCheck
from components.checks.tls import TlsCheck
from components.checks.upstream import UpstreamCheck
from components.models import CheckKind

KINDS: dict[str, CheckKindRunner] = {
    CheckKind.HTTP: HttpCheck(),
    CheckKind.TCP: TcpCheck(),
    CheckKind.DNS: DnsCheck(),
    CheckKind.TLS: TlsCheck(),
    CheckKind.HEARTBEAT: HeartbeatCheck(),
    CheckKind.PROMETHEUS: PrometheusCheck(),
    CheckKind.UPSTREAM: UpstreamCheck(),
}

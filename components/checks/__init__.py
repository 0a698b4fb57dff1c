"""Health check kinds: one class per kind, registered here (see base.CheckKindRunner)."""

from components.checks.heartbeat import HeartbeatCheck
from components.checks.http import HttpCheck
from components.models import CheckKind

KINDS = {
    CheckKind.HTTP: HttpCheck(),
    CheckKind.HEARTBEAT: HeartbeatCheck(),
}

"""One class per monitoring tool: its webhook body in, the alerts it speaks of out.

`load_body(bytes)` reads the JSON, refusing anything PostgreSQL or Python would choke on
later; a kind's `parse(body)` then returns ParsedAlerts or raises PayloadError with a
reason staff can act on. Kinds know nothing of components or statuses: the service maps
labels to them.
"""

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal, Protocol, TypeAlias

# What a tool says of an alert (not of a component: the service maps that to a status).
Report: TypeAlias = Literal["firing", "resolved"]
FIRING: Final = "firing"
RESOLVED: Final = "resolved"

MAX_FINGERPRINT = 255
# No sender nests its body deeper than a handful of levels; a deep one is an attack on the
# parser (thousands of levels make json.loads raise RecursionError).
MAX_DEPTH = 32
# Alertmanager with `max_alerts: 0` sends a whole group at once; a thousand is a big group.
MAX_ALERTS = 1000


class PayloadError(ValueError):
    """The body is not what this kind of integration sends."""


@dataclass(frozen=True)
class ParsedAlert:
    fingerprint: str
    status: Report
    labels: dict[str, str] = field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    summary: str = ""
    # The tool's own severity, used when the integration's severity label is absent.
    severity: str = ""

    @property
    def firing(self) -> bool:
        return self.status == FIRING

    @property
    def event_at(self) -> datetime | None:
        """When what this notification says happened: the start of a firing alert, the
        end of a resolved one."""
        return self.starts_at if self.firing else (self.ends_at or self.starts_at)


def load_body(body: bytes):
    """The body as JSON, or PayloadError: not UTF-8, not JSON, NaN or Infinity, nested
    deeper than MAX_DEPTH, or a string (key or value) holding NUL or a lone UTF-16
    surrogate, which PostgreSQL cannot store."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PayloadError("The body is not UTF-8 text.") from error
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except PayloadError:
        raise
    except RecursionError as error:
        raise PayloadError(f"The body nests deeper than {MAX_DEPTH} levels.") from error
    except json.JSONDecodeError as error:
        raise PayloadError(f"The body is not JSON: {error}.") from error
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        raise PayloadError(f"The body is not JSON Beacon can read: {error}.") from error
    _check_values(data)
    return data


def _refuse_constant(name: str):
    raise PayloadError(f"The body is not JSON: {name} is not a number JSON allows.")


def _check_values(data) -> None:
    """Walk the parsed body (iteratively: its depth is not trusted yet)."""
    pending = [(data, "the body", 0)]
    while pending:
        value, where, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise PayloadError(f"The body nests deeper than {MAX_DEPTH} levels.")
        if isinstance(value, str):
            _check_text(value, where)
        elif isinstance(value, float) and not math.isfinite(value):
            raise PayloadError(f"{where} is a number too large for JSON.")
        elif isinstance(value, dict):
            for key, item in value.items():
                inner = f"{where}.{_shown(key)}"
                _check_text(key, f"A key in {where}")
                pending.append((item, inner, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, f"{where}[{n}]", depth + 1) for n, item in enumerate(value))


def _check_text(value: str, where: str) -> None:
    if "\x00" in value:
        raise PayloadError(f"{where} contains a NUL character (\\u0000).")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise PayloadError(
            f"{where} contains a lone UTF-16 surrogate ({value[error.start]!r})."
        ) from error


def _brief(value) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:59] + "…"


def _shown(key: str) -> str:
    """A key as it may appear in a message: escaped (repr), and short."""
    shown = repr(key[:40])[1:-1]
    return shown + "…" if len(key) > 40 else shown


def parse_time(value, where: str) -> datetime | None:
    """An RFC 3339 time (Go's zero time and empty mean none) or Unix seconds/milliseconds."""
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise PayloadError(f"{where} is not a time: {_brief(value)}.")
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        digits = value.strip()
        if len(digits) > 20:
            raise PayloadError(f"{where} is not a time: {digits[:60]!r}.")
        value = int(digits)
    if isinstance(value, int | float):
        try:
            seconds = value / 1000 if value > 100_000_000_000 else value
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError) as error:
            raise PayloadError(f"{where} is not a time: {_brief(value)}.") from error
    if not isinstance(value, str):
        raise PayloadError(f"{where} is not a time: {_brief(value)}.")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as error:
        raise PayloadError(f"{where} is not an RFC 3339 time: {value[:60]!r}.") from error
    if moment.year <= 1:  # Go's zero time: "0001-01-01T00:00:00Z"
        return None
    if moment.tzinfo is None:
        raise PayloadError(f"{where} has no time zone: {value[:60]!r}.")
    try:
        # In UTC, so that comparing it can never overflow (9999-12-31T23:00-05:00 is after
        # the last moment Python knows).
        return moment.astimezone(UTC)
    except OverflowError as error:
        raise PayloadError(f"{where} is out of range: {value[:60]!r}.") from error


def string_map(value, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object of strings.")
    result = {}
    for key, item in value.items():
        if isinstance(item, dict | list) or item is None:
            raise PayloadError(f"{where}.{_shown(key)} must be a string.")
        result[str(key)] = item if isinstance(item, str) else json.dumps(item)
    return result


def fingerprint_of(labels: dict[str, str]) -> str:
    """A stable fingerprint from labels, for senders that give none."""
    canonical = json.dumps(labels, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def bounded(fingerprint: str) -> str:
    if len(fingerprint) <= MAX_FINGERPRINT:
        return fingerprint
    return "sha256:" + hashlib.sha256(fingerprint.encode()).hexdigest()


def _object(body, what: str) -> dict:
    if not isinstance(body, dict):
        raise PayloadError(f"The body must be a JSON object ({what}).")
    return body


def _text(value) -> str:
    return value.strip() if isinstance(value, str) else ""


def _optional_text(body: dict, key: str, where: str) -> str:
    """A field that may be absent or null, but is a string when given."""
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"{where} must be a string, not {type(value).__name__}.")
    return value.strip()


def _alert_list(alerts) -> list:
    if not isinstance(alerts, list):
        raise PayloadError('"alerts" must be a list.')
    if len(alerts) > MAX_ALERTS:
        raise PayloadError(
            f'"alerts" holds {len(alerts)} alerts; Beacon reads at most {MAX_ALERTS} a delivery.'
        )
    return alerts


class Alertmanager:
    """Prometheus Alertmanager's webhook_config body, version 4."""

    label = "Prometheus Alertmanager"
    versions = {"4"}

    def parse(self, body) -> list[ParsedAlert]:
        body = _object(body, f"an {self.label} webhook notification")
        version = body.get("version")
        if version is not None and str(version) not in self.versions:
            raise PayloadError(
                f"Version {_brief(version)} of the webhook payload is not supported "
                f"(expected {' or '.join(sorted(self.versions))})."
            )
        alerts = _alert_list(body.get("alerts"))
        return [self._alert(alert, n) for n, alert in enumerate(alerts)]

    def _alert(self, alert, n: int) -> ParsedAlert:
        where = f"alerts[{n}]"
        if not isinstance(alert, dict):
            raise PayloadError(f"{where} must be an object.")
        status = alert.get("status")
        if status not in (FIRING, RESOLVED):
            raise PayloadError(
                f'{where}.status must be "firing" or "resolved", not {_brief(status)}.'
            )
        labels = string_map(alert.get("labels"), f"{where}.labels")
        annotations = string_map(alert.get("annotations"), f"{where}.annotations")
        name = labels.get("alertname", "")
        about = annotations.get("summary") or annotations.get("description", "")
        fingerprint = _optional_text(alert, "fingerprint", f"{where}.fingerprint")
        return ParsedAlert(
            fingerprint=bounded(fingerprint or fingerprint_of(labels)),
            status=status,
            labels=labels,
            starts_at=parse_time(alert.get("startsAt"), f"{where}.startsAt"),
            ends_at=parse_time(alert.get("endsAt"), f"{where}.endsAt"),
            summary=": ".join(part for part in (name, about) if part),
        )


class Grafana(Alertmanager):
    """Grafana alerting's webhook contact point: Alertmanager's body plus Grafana's fields
    (orgId, title, state, message, values)."""

    label = "Grafana"
    versions = {"1"}


class Datadog:
    """Datadog's Webhooks integration with the payload template in docs/alerts.md."""

    label = "Datadog"
    TRANSITIONS: dict[str, Report] = {
        "triggered": FIRING,
        "re-triggered": FIRING,
        "renotify": FIRING,
        "warn": FIRING,
        "re-warn": FIRING,
        "recovered": RESOLVED,
    }
    NO_DATA = {"no data", "re-no data"}

    def parse(self, body) -> list[ParsedAlert]:
        body = _object(body, "Datadog's webhook payload")
        alert_id = body.get("alert_id")
        if isinstance(alert_id, bool) or not isinstance(alert_id, str | int | None):
            raise PayloadError('"alert_id" ($ALERT_ID) must be a string or a number.')
        alert_id = "" if alert_id is None else str(alert_id).strip()
        if not alert_id or alert_id.startswith("$"):
            raise PayloadError('"alert_id" ($ALERT_ID) is missing: check the payload template.')
        transition = _optional_text(body, "transition", '"transition"').lower()
        if transition in self.NO_DATA:
            return []  # missing data says nothing about the component
        status = self.TRANSITIONS.get(transition)
        if status is None:
            raise PayloadError(
                f'"transition" ($ALERT_TRANSITION) {transition[:60]!r} is not one '
                f"Beacon knows ({', '.join(sorted(self.TRANSITIONS))}, No Data)."
            )
        scope = _optional_text(body, "scope", '"scope"')
        labels = {**self._tags(body.get("tags"), "tags"), **self._tags(scope, "scope")}
        at = parse_time(body.get("date"), "date") or parse_time(
            body.get("last_updated"), "last_updated"
        )
        alert_type = _optional_text(body, "alert_type", '"alert_type"')
        warning = transition in ("warn", "re-warn") or alert_type == "warning"
        return [
            ParsedAlert(
                fingerprint=bounded(f"{alert_id}:{scope}" if scope else alert_id),
                status=status,
                labels=labels,
                starts_at=at if status == FIRING else None,
                ends_at=at if status == RESOLVED else None,
                summary=_optional_text(body, "title", '"title"'),
                severity="warning" if warning else "critical",
            )
        ]

    @staticmethod
    def _tags(value, where: str) -> dict[str, str]:
        """ "env:prod, component:api,monitor" → {"env": "prod", "component": "api", ...}."""
        if value is None or value == "":
            return {}
        if isinstance(value, list):
            items = value
        elif isinstance(value, str):
            items = value.split(",")
        else:
            raise PayloadError(f'"{where}" must be a comma-separated string of tags.')
        labels: dict[str, str] = {}
        for item in items:
            if not isinstance(item, str):
                raise PayloadError(f'"{where}" must hold strings.')
            key, _, tag_value = item.strip().partition(":")
            if key and not key.startswith("$"):
                labels[key] = tag_value
        return labels


class Generic:
    """Beacon's own format (docs/alerts.md): one alert, or {"alerts": [...]}."""

    label = "Generic JSON"

    def parse(self, body) -> list[ParsedAlert]:
        body = _object(body, 'one alert or {"alerts": [...]}')
        if "alerts" in body:
            alerts = _alert_list(body["alerts"])
            return [self._alert(alert, f"alerts[{n}]") for n, alert in enumerate(alerts)]
        return [self._alert(body, "the alert")]

    def _alert(self, alert, where: str) -> ParsedAlert:
        if not isinstance(alert, dict):
            raise PayloadError(f"{where} must be an object.")
        fingerprint = alert.get("id")
        if not isinstance(fingerprint, str | int) or isinstance(fingerprint, bool):
            raise PayloadError(f'{where} needs an "id" (a string naming the alert).')
        if isinstance(fingerprint, int) and abs(fingerprint) >= 2**63:
            raise PayloadError(f"{where}.id is a number too large to name an alert.")
        fingerprint = str(fingerprint).strip()
        if not fingerprint:
            raise PayloadError(f'{where} needs an "id" (a string naming the alert).')
        status = alert.get("status")
        if status not in (FIRING, RESOLVED):
            raise PayloadError(
                f'{where}.status must be "firing" or "resolved", not {_brief(status)}.'
            )
        summary = alert.get("summary", "")
        if not isinstance(summary, str):
            raise PayloadError(f"{where}.summary must be a string.")
        return ParsedAlert(
            fingerprint=bounded(fingerprint),
            status=status,
            labels=string_map(alert.get("labels"), f"{where}.labels"),
            starts_at=parse_time(alert.get("starts_at"), f"{where}.starts_at"),
            ends_at=parse_time(alert.get("ends_at"), f"{where}.ends_at"),
            summary=summary.strip(),
        )


class Kind(Protocol):
    label: str

    def parse(self, body) -> list[ParsedAlert]: ...


KINDS: dict[str, Kind] = {
    "alertmanager": Alertmanager(),
    "grafana": Grafana(),
    "datadog": Datadog(),
    "generic": Generic(),
}

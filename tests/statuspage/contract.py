"""A structural comparison of our JSON with a real Statuspage payload.

`shape_differences(ours, theirs)` walks both values and names every place where a client
written against `theirs` could trip over `ours`: a key on one side only, a different type,
or an enum value Statuspage never sends. Values themselves are not compared.
"""

from typing import Any

# Where Statuspage sends null for "not set" and a value otherwise.
NULLABLE_KEYS = frozenset(
    {
        "description",
        "start_date",
        "group_id",
        "monitoring_at",
        "resolved_at",
        "affected_components",
        "custom_tweet",
        "tweet_id",
        "scheduled_for",
        "scheduled_until",
        "postmortem_body",
        "postmortem_body_last_updated_at",
        "postmortem_published_at",
        "impact_override",
        "twitter_updated_at",
        "scheduled_reminded_at",
    }
)

COMPONENT_STATUSES = frozenset(
    {"operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"}
)
INCIDENT_STATUSES = frozenset(
    {
        "investigating",
        "identified",
        "monitoring",
        "resolved",
        "postmortem",
        "scheduled",
        "in_progress",
        "verifying",
        "completed",
    }
)
IMPACTS = frozenset({"none", "minor", "major", "critical", "maintenance"})
INDICATORS = IMPACTS


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise TypeError(f"not a JSON value: {value!r}")


def kind(value: Any) -> str:
    """What a list element is, so each is compared with a reference of the same kind."""
    if isinstance(value, dict):
        if value.get("group") is True:
            return "group"
        if "position" in value:
            return "component"
        if "incident_updates" in value:
            return "incident"
        if "incident_id" in value:
            return "incident_update"
        if "old_status" in value:
            return "affected_component"
    return json_type(value)


def allowed_values(obj: dict, key: str) -> frozenset[str] | None:
    """The enum a string at `obj[key]` must belong to, or None when it is free text."""
    if key in ("impact", "impact_override"):
        return IMPACTS
    if key == "indicator":
        return INDICATORS
    if key in ("old_status", "new_status"):
        return COMPONENT_STATUSES
    if key == "status":
        return COMPONENT_STATUSES if kind(obj) in ("group", "component") else INCIDENT_STATUSES
    return None


def shape_differences(ours: Any, theirs: Any, path: str = "$") -> list[str]:
    differences: list[str] = []
    _compare(ours, theirs, path, key=None, out=differences)
    return differences


def _compare(ours: Any, theirs: Any, path: str, *, key: str | None, out: list[str]) -> None:
    ours_type, theirs_type = json_type(ours), json_type(theirs)
    if ours_type != theirs_type:
        nullable = key in NULLABLE_KEYS and "null" in (ours_type, theirs_type)
        if not (nullable and "boolean" not in (ours_type, theirs_type)):
            out.append(f"{path}: type {ours_type}, Statuspage sends {theirs_type}")
        return
    if ours_type == "object":
        for name in theirs:
            if name not in ours:
                out.append(f"{path}.{name}: missing (Statuspage sends it)")
        for name in ours:
            if name not in theirs:
                out.append(f"{path}.{name}: extra key (Statuspage has no such key)")
        for name in (name for name in ours if name in theirs):
            allowed = allowed_values(ours, name)
            value = ours[name]
            if allowed is not None and isinstance(value, str) and value not in allowed:
                out.append(f"{path}.{name}: {value!r} is not one of {sorted(allowed)}")
            _compare(value, theirs[name], f"{path}.{name}", key=name, out=out)
    elif ours_type == "array":
        references: dict[str, Any] = {}
        for element in theirs:
            references.setdefault(kind(element), element)
        for index, element in enumerate(ours):
            reference = references.get(kind(element), _MISSING)
            if reference is _MISSING:
                if theirs:
                    out.append(f"{path}[{index}]: a {kind(element)}, Statuspage sends none here")
                continue
            _compare(element, reference, f"{path}[{index}]", key=key, out=out)


_MISSING = object()

"""Status page as code: groups, components and health checks declared in a YAML file.

Three steps, each a plain function: `parse` reads the file into declarations and validates
every value (with the models' own rules and each check kind's), naming the line and field of
every problem; `plan` compares the declarations with the database and answers the changes;
`apply` writes them in one transaction. Nothing is written while any problem remains.

Names are the keys: a group and a component by name, a check by (component, name). What the
file declares is the whole truth for the fields it manages: a key left out means the model's
default, so removing `timeout:` from a check sets it back to 10 s. Objects the file creates or
updates become `managed_by_config`; with `prune`, managed objects the file no longer declares
are deleted, while objects made in the admin are never touched. A component manages exactly
the checks listed under it. The file declares structure, never status.
"""

import difflib
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models, transaction

from components.checks import KINDS
from components.models import (
    AutoIncident,
    Automation,
    CheckKind,
    Component,
    ComponentGroup,
    HealthCheck,
)
from components.publishing import public_write
from components.services import (
    component_create,
    component_delete,
    component_group_create,
    component_group_delete,
    component_group_update,
    component_update,
)
from components.sla_terms import percent_text

CREATE, UPDATE, DELETE = "create", "update", "delete"


# Problems: every one names where it is.


@dataclass(frozen=True)
class Problem:
    line: int | None
    path: str  # e.g. components[0].checks[1].interval; empty for the file as a whole
    message: str

    def format(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The file cannot be applied; `problems` says everything that is wrong with it."""

    def __init__(self, source: str, problems: Iterable[Problem]):
        self.source = source
        self.problems = sorted(problems, key=lambda p: (p.line or 0, p.path))
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [problem.format(self.source) for problem in self.problems]


class Invalid(Exception):
    """A value the key cannot have; the message follows the key's path."""


# Values: from YAML nodes to model values. Each reader takes the value's node.


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise Invalid(f"expected a single value, got a {_shape(node)}")
    try:
        return yaml.constructor.SafeConstructor().construct_object(node)
    except yaml.YAMLError:
        raise Invalid(f'"{node.value}" cannot be read ({node.tag})') from None


def _shape(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "mapping"
    if isinstance(node, yaml.SequenceNode):
        return "list"
    return f"value ({node.value!r})"


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def text(node: yaml.Node) -> str:
    # The text as written: YAML 1.1 would read `off` as false and `1.10` as 1.1.
    if not isinstance(node, yaml.ScalarNode):
        raise Invalid(f"expected text, got a {_shape(node)}")
    return "" if _is_null(node) else node.value


def upper_text(node: yaml.Node) -> str:
    return text(node).upper()


def boolean(node: yaml.Node) -> bool:
    value = _scalar(node)
    if not isinstance(value, bool):
        raise Invalid(f'"{node.value}" is not true or false')
    return value


def integer(node: yaml.Node) -> int:
    value = _scalar(node)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f'"{node.value}" is not a whole number')
    if value < 0:
        raise Invalid(f"{value} is negative")
    return value


def port(node: yaml.Node) -> int:
    value = integer(node)
    if not 1 <= value <= 65535:
        raise Invalid(f"{value} is not a port (1–65535)")
    return value


def number(node: yaml.Node) -> float:
    value = _scalar(node)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f'"{node.value}" is not a number')
    return float(value)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def _duration(node: yaml.Node, *, hint: str) -> float:
    """Seconds, from `10s`, `5m`, `1h`, `1d`, `500ms` or a bare number of seconds."""
    value = _scalar(node)
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    match = _DURATION.fullmatch(str(node.value).strip())
    if isinstance(value, bool) or match is None:
        raise Invalid(f'"{node.value}" is not a duration (use {hint})')
    return float(match[1]) * _UNIT_SECONDS[match[2]]


def whole_seconds(node: yaml.Node) -> int:
    seconds = _duration(node, hint="10s, 5m, 1h")
    if seconds != int(seconds):
        raise Invalid(f'"{node.value}" is not a whole number of seconds')
    return int(seconds)


def seconds(node: yaml.Node) -> float:
    return _duration(node, hint="500ms, 10s, 5m")


def milliseconds(node: yaml.Node) -> int | None:
    if _is_null(node):
        return None
    return round(_duration(node, hint="500ms, 2s") * 1000)


def choice(values: Iterable[str]) -> Callable[[yaml.Node], str]:
    allowed = list(values)

    def read(node: yaml.Node) -> str:
        value = text(node)
        if value not in allowed:
            raise Invalid(f'"{value}" is not one of {", ".join(allowed)}{_suggest(value, allowed)}')
        return value

    return read


def check_kind(node: yaml.Node) -> str:
    # Read at run time: the kinds Beacon can run are the ones registered in KINDS.
    return choice(KINDS)(node)


def text_list(node: yaml.Node) -> list[str]:
    if isinstance(node, yaml.ScalarNode) and not _is_null(node):
        return [text(node)]  # a single value stands for a list of one
    if _is_null(node):
        return []
    if not isinstance(node, yaml.SequenceNode):
        raise Invalid(f"expected a list, got a {_shape(node)}")
    return [_item(text, item, index) for index, item in enumerate(node.value)]


def integer_list(node: yaml.Node) -> list[int]:
    if isinstance(node, yaml.ScalarNode) and not _is_null(node):
        return [integer(node)]
    if _is_null(node):
        return []
    if not isinstance(node, yaml.SequenceNode):
        raise Invalid(f"expected a list of numbers, got a {_shape(node)}")
    return [_item(integer, item, index) for index, item in enumerate(node.value)]


def _item(read: Callable[[yaml.Node], Any], node: yaml.Node, index: int) -> Any:
    try:
        return read(node)
    except Invalid as error:
        raise Invalid(f"item {index + 1}: {error}") from None


def text_mapping(node: yaml.Node) -> dict[str, str]:
    if _is_null(node):
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise Invalid(f"expected a mapping of names to values, got a {_shape(node)}")
    return {text(key): text(value) for key, value in node.value}


def sla_target(node: yaml.Node) -> Decimal | None:
    """A percentage such as 99.9, or null for none; the model's validator checks its range."""
    if _is_null(node):
        return None
    # A float's str() is its shortest form: 99.95, not 99.9499999…
    return Decimal(str(number(node)))


def credit_tiers(node: yaml.Node) -> list[dict[str, float]]:
    """`- {below: 99.9, credit: 10}` items; the model's validator checks their order."""
    if _is_null(node):
        return []
    if not isinstance(node, yaml.SequenceNode):
        raise Invalid(f"expected a list of tiers, got a {_shape(node)}")
    return [_item(_credit_tier, item, index) for index, item in enumerate(node.value)]


def _credit_tier(node: yaml.Node) -> dict[str, float]:
    if not isinstance(node, yaml.MappingNode):
        raise Invalid(f"expected a mapping with below and credit, got a {_shape(node)}")
    tier = {text(key): value for key, value in node.value}
    if set(tier) != {"below", "credit"}:
        raise Invalid("a tier has exactly the keys below and credit")
    return {name: number(tier[name]) for name in ("below", "credit")}


_CONDITION = re.compile(r"\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*")


def _choices(model: type[models.Model], attr: str) -> list[str]:
    model_field = model._meta.get_field(attr)
    assert isinstance(model_field, models.Field)
    return [str(value) for value, _ in model_field.flatchoices]


COMPARISONS = _choices(HealthCheck, "comparison")


def condition(node: yaml.Node) -> tuple[str, float]:
    """`> 0.05` is the comparison and the threshold of a Prometheus check."""
    match = _CONDITION.fullmatch(text(node))
    try:
        threshold = float(match[2]) if match else None
    except ValueError:
        threshold = None
    if match is None or threshold is None:
        raise Invalid(f'"{node.value}" is not a condition (use e.g. "> 0.05" or "<= 3")')
    return match[1], threshold


# Keys: what each YAML key sets on its model.


@dataclass(frozen=True)
class Key:
    name: str
    attrs: tuple[str, ...]  # the model fields it sets; several when it reads a tuple
    read: Callable[[yaml.Node], Any]

    def values(self, node: yaml.Node) -> dict[str, Any]:
        value = self.read(node)
        if len(self.attrs) == 1:
            return {self.attrs[0]: value}
        return dict(zip(self.attrs, value, strict=True))


def _keys(*keys: Key) -> dict[str, Key]:
    return {key.name: key for key in keys}


def _same(name: str, read: Callable[[yaml.Node], Any]) -> Key:
    return Key(name, (name,), read)


SLA_KEYS = (_same("sla_target", sla_target), _same("sla_credit_tiers", credit_tiers))

GROUP_KEYS = _keys(_same("description", text), _same("position", integer), *SLA_KEYS)

COMPONENT_KEYS = _keys(
    _same("description", text),
    _same("position", integer),
    _same("showcase", boolean),
    _same("only_show_if_degraded", boolean),
    _same("automation", choice(Automation.values)),
    _same("auto_incident", choice(AutoIncident.values)),
    _same(
        "auto_incident_recovery",
        choice(_choices(Component, "auto_incident_recovery")),
    ),
    *SLA_KEYS,
)

CHECK_KEYS = _keys(
    Key("type", ("kind",), check_kind),
    _same("enabled", boolean),
    _same("interval", whole_seconds),
    _same("timeout", seconds),
    _same("locations", text_list),
    _same("quorum", integer),
    _same("failures_before_down", integer),
    _same("successes_before_up", integer),
    _same(
        "down_status",
        choice(_choices(HealthCheck, "down_status")),
    ),
    Key("degraded_latency", ("degraded_latency_ms",), milliseconds),
    _same("show_on_page", boolean),
    _same("url", text),
    _same("method", upper_text),
    _same("headers", text_mapping),
    _same("body", text),
    _same("expect_status", integer_list),
    _same("keyword", text),
    _same("keyword_absent", boolean),
    _same("json_assertion", text),
    _same("follow_redirects", boolean),
    _same("verify_tls", boolean),
    _same("host", text),
    _same("port", port),
    _same("record_type", upper_text),
    Key("expected", ("expected_values",), text_list),
    _same("resolver", text),
    _same("expiry_warning_days", integer),
    _same("grace", whole_seconds),
    _same("query", text),
    Key("condition", ("comparison", "threshold"), condition),
    _same("comparison", choice(COMPARISONS)),
    _same("threshold", number),
    _same("upstream_component", text),
)

# Keys read apart from the tables above: identity and relations.
GROUP_OWN_KEYS = ("name",)
COMPONENT_OWN_KEYS = ("name", "group", "checks")
CHECK_OWN_KEYS = ("name",)
TOP_KEYS = ("groups", "components")


def _defaults(model: type[models.Model], keys: dict[str, Key]) -> dict[str, Any]:
    defaults = {}
    for attr in sorted({attr for key in keys.values() for attr in key.attrs}):
        model_field = model._meta.get_field(attr)
        assert isinstance(model_field, models.Field)
        defaults[attr] = model_field.get_default()
    return defaults


def _key_of(attr: str, keys: dict[str, Key]) -> str:
    return next((key.name for key in keys.values() if attr in key.attrs), attr)


# Declarations: what the file says, validated, with where it says it.


@dataclass
class Declared:
    """One object the file declares: its name, the model fields it sets, where it stands."""

    name: str
    values: dict[str, Any]
    path: str
    line: int
    keys: dict[str, tuple[str, int]] = field(default_factory=dict)  # attr -> (key, line)
    failed: set[str] = field(default_factory=set)  # attrs whose key could not be read


@dataclass
class DeclaredComponent(Declared):
    group: str | None = None
    checks: list[Declared] = field(default_factory=list)


@dataclass
class Config:
    source: str
    groups: list[Declared]
    components: list[DeclaredComponent]


def parse(text: str, *, source: str) -> Config:
    """The declarations of a beacon.yaml; ConfigError naming every problem in it."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        reason = error.problem or error.context or "invalid YAML"
        raise ConfigError(source, [Problem(line, "", f"invalid YAML: {reason}")]) from None
    except yaml.YAMLError as error:
        raise ConfigError(source, [Problem(None, "", f"invalid YAML: {error}")]) from None
    reader = _Reader()
    config = reader.config(root, source)
    if reader.problems:
        raise ConfigError(source, reader.problems)
    return config


class _Reader:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def problem(self, node: yaml.Node, path: str, message: str) -> None:
        self.problems.append(Problem(node.start_mark.line + 1, path, message))

    def config(self, root: yaml.Node | None, source: str) -> Config:
        if root is None:
            self.problems.append(
                Problem(None, "", "the file declares nothing (expected groups: and components:)")
            )
            return Config(source, [], [])
        top = self.mapping(root, "", TOP_KEYS, "the file")
        groups = [
            group
            for index, node in enumerate(self.sequence(top.get("groups"), "groups"))
            if (group := self.group(node, f"groups[{index}]", index)) is not None
        ]
        components = [
            component
            for index, node in enumerate(self.sequence(top.get("components"), "components"))
            if (component := self.component(node, f"components[{index}]", index)) is not None
        ]
        self.unique(groups, "group")
        self.unique(components, "component")
        declared_groups = [group.name for group in groups]
        for component in components:
            if component.group is not None and component.group not in declared_groups:
                line = component.keys["group"][1]
                self.problems.append(
                    Problem(
                        line,
                        f"{component.path}.group",
                        f'no group named "{component.group}" is declared under groups'
                        + _suggest(component.group, declared_groups),
                    )
                )
            self.unique(component.checks, "check")
        return Config(source, groups, components)

    def mapping(
        self,
        node: yaml.Node,
        path: str,
        own: Iterable[str],
        what: str,
        keys: dict[str, Key] | None = None,
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """The mapping's entries by key; unknown and repeated keys are problems."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, path, f"{what} must be a mapping of keys to values")
            return {}
        known = [*own, *(keys or {})]
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            key_path = f"{path}.{key}" if path else str(key)
            if key is None:
                self.problem(key_node, path, "keys must be plain names")
            elif key in entries:
                self.problem(key_node, key_path, "given twice")
            elif key not in known:
                self.problem(key_node, key_path, f"unknown field '{key}'{_suggest(key, known)}")
            else:
                entries[key] = (key_node, value_node)
        return entries

    def sequence(self, entry: tuple[yaml.Node, yaml.Node] | None, path: str) -> list[yaml.Node]:
        if entry is None or _is_null(entry[1]):
            return []
        if not isinstance(entry[1], yaml.SequenceNode):
            self.problem(entry[1], path, f"expected a list, got a {_shape(entry[1])}")
            return []
        return entry[1].value

    def declared(
        self,
        node: yaml.Node,
        path: str,
        what: str,
        own: Iterable[str],
        keys: dict[str, Key],
        model: type[models.Model],
    ) -> tuple[Declared, dict[str, tuple[yaml.Node, yaml.Node]]] | None:
        entries = self.mapping(node, path, own, f"a {what}", keys)
        if not isinstance(node, yaml.MappingNode):
            return None
        name = ""
        if "name" not in entries:
            self.problem(node, f"{path}.name", f"every {what} needs a name")
        else:
            try:
                name = text(entries["name"][1]).strip()
            except Invalid as error:
                self.problem(entries["name"][1], f"{path}.name", str(error))
            else:
                if not name:
                    self.problem(entries["name"][1], f"{path}.name", "must not be empty")
        declared = Declared(name, _defaults(model, keys), path, node.start_mark.line + 1)
        declared.keys["name"] = ("name", node.start_mark.line + 1)
        for key, (_, value_node) in entries.items():
            line = value_node.start_mark.line + 1
            if key in own:
                declared.keys[key] = (key, line)
                continue
            try:
                values = keys[key].values(value_node)
            except Invalid as error:
                self.problem(value_node, f"{path}.{key}", str(error))
                declared.failed.update(keys[key].attrs)
                continue
            for attr, value in values.items():
                if attr in declared.keys and declared.keys[attr][0] != key:
                    other = declared.keys[attr][0]
                    self.problem(value_node, f"{path}.{key}", f"give either {other} or {key}")
                declared.values[attr] = value
                declared.keys[attr] = (key, line)
        return declared, entries

    def group(self, node: yaml.Node, path: str, index: int) -> Declared | None:
        found = self.declared(node, path, "group", GROUP_OWN_KEYS, GROUP_KEYS, ComponentGroup)
        if found is None:
            return None
        group, _ = found
        if "position" not in group.keys:
            group.values["position"] = index + 1  # file order
        self.validate(ComponentGroup(name=group.name, **group.values), group, GROUP_KEYS)
        return group

    def component(self, node: yaml.Node, path: str, index: int) -> DeclaredComponent | None:
        found = self.declared(
            node, path, "component", COMPONENT_OWN_KEYS, COMPONENT_KEYS, Component
        )
        if found is None:
            return None
        declared, entries = found
        component = DeclaredComponent(**vars(declared))
        if "position" not in component.keys:
            component.values["position"] = index + 1  # file order
        if "group" in entries:
            try:
                component.group = text(entries["group"][1]).strip() or None
            except Invalid as error:
                self.problem(entries["group"][1], f"{path}.group", str(error))
        self.validate(Component(name=component.name, **component.values), component, COMPONENT_KEYS)
        for number, check_node in enumerate(self.sequence(entries.get("checks"), f"{path}.checks")):
            check = self.check(check_node, f"{path}.checks[{number}]")
            if check is not None:
                component.checks.append(check)
        return component

    def check(self, node: yaml.Node, path: str) -> Declared | None:
        found = self.declared(node, path, "check", CHECK_OWN_KEYS, CHECK_KEYS, HealthCheck)
        if found is None:
            return None
        check, _ = found
        if "kind" not in check.keys and "kind" not in check.failed:
            kinds = ", ".join(KINDS)
            self.problem(node, f"{path}.type", f"every check needs a type ({kinds})")
            return check
        instance = HealthCheck(name=check.name, **check.values)
        errors = self.validate(instance, check, CHECK_KEYS)
        kind = KINDS.get(check.values["kind"])
        if kind is not None and "kind" not in errors:
            self.report(kind.validate(instance), check, CHECK_KEYS, reported=errors)
        return check

    def validate(
        self, instance: models.Model, declared: Declared, keys: dict[str, Key]
    ) -> set[str]:
        """The model's own rules; returns the fields found wrong (or already reported)."""
        try:
            # Relations and uniqueness are the plan's business: the file's objects may not
            # exist yet, and names are checked for repeats above.
            instance.full_clean(
                exclude=["component", "group"], validate_unique=False, validate_constraints=False
            )
        except ValidationError as error:
            return self.report(
                {attr: " ".join(messages) for attr, messages in error.message_dict.items()},
                declared,
                keys,
            )
        return self.report({}, declared, keys)

    def report(
        self,
        errors: dict[str, str],
        declared: Declared,
        keys: dict[str, Key],
        reported: set[str] | None = None,
    ) -> set[str]:
        done = declared.failed | (reported or set())  # reported already
        for attr, message in errors.items():
            if attr in done:
                continue
            done.add(attr)
            if attr == NON_FIELD_ERRORS:
                self.problems.append(Problem(declared.line, declared.path, message))
            elif attr in declared.keys:
                key, line = declared.keys[attr]
                self.problems.append(Problem(line, f"{declared.path}.{key}", message))
            else:
                key = _key_of(attr, keys)
                self.problems.append(
                    Problem(declared.line, f"{declared.path}.{key}", f"missing: {message}")
                )
        return done

    def unique(self, declared: list[Any], what: str) -> None:
        seen: dict[str, Declared] = {}
        for item in declared:
            if not item.name:
                continue
            if item.name in seen:
                first = seen[item.name]
                self.problems.append(
                    Problem(
                        item.line,
                        f"{item.path}.name",
                        f'another {what} is named "{item.name}" (line {first.line}); '
                        "names must be unique",
                    )
                )
            else:
                seen[item.name] = item


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


# The plan: what applying the file would change.


Managed = ComponentGroup | Component | HealthCheck


@dataclass
class Change:
    action: str  # CREATE, UPDATE or DELETE
    obj: Managed
    values: dict[str, Any] = field(default_factory=dict)  # attr -> new value
    old: dict[str, Any] = field(default_factory=dict)  # attr -> current value (updates)
    note: str = ""

    def describe(self, *, done: bool, ping_base: str = "") -> str:
        verb = {CREATE: "created", UPDATE: "updated", DELETE: "deleted"}[self.action]
        if not done:
            verb = self.action
        line = f"{verb} {_label(self.obj)}"
        if self.action == UPDATE:
            line += ": " + ", ".join(
                _describe_field(self.obj, attr, self.old[attr], new)
                for attr, new in self.values.items()
            )
        if self.note:
            line += f" ({self.note})"
        obj = self.obj
        if done and self.action == CREATE and isinstance(obj, HealthCheck) and _heartbeat(obj):
            line += f"; ping URL: {ping_base.rstrip('/')}{obj.ping_path}"
        return line


@dataclass
class Plan:
    source: str
    changes: list[Change]
    kept: list[str]  # managed objects the file no longer declares, left in place

    @property
    def is_empty(self) -> bool:
        return not self.changes

    def describe(self, *, done: bool, ping_base: str = "") -> str:
        """The plan, or (done) what applying it did; heartbeats' ping URLs under ping_base."""
        if self.is_empty:
            lines = [f"{self.source}: nothing to change."]
        elif done:
            lines = [f"Applied {self.source}:"]
        else:
            lines = [f"Plan for {self.source} (dry run: nothing written):"]
        lines += [f"  {change.describe(done=done, ping_base=ping_base)}" for change in self.changes]
        lines += [f"  kept {note}" for note in self.kept]
        if not self.is_empty:
            lines.append(self.summary(done=done))
        return "\n".join(lines)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((CREATE, UPDATE, DELETE), 0)
        for change in self.changes:
            counts[change.action] += 1
        return counts

    def summary(self, *, done: bool) -> str:
        counts = self.counts()
        if done:
            return f"{counts[CREATE]} created, {counts[UPDATE]} updated, {counts[DELETE]} deleted."
        return (
            f"{counts[CREATE]} to create, {counts[UPDATE]} to update, {counts[DELETE]} to delete."
        )


def _label(obj: Managed) -> str:
    if isinstance(obj, HealthCheck):
        return f'check "{obj.name}" ({obj.kind}) of "{obj.component.name}"'
    if isinstance(obj, Component):
        return f'component "{obj.name}"'
    return f'group "{obj.name}"'


def _heartbeat(check: HealthCheck) -> bool:
    return check.kind == CheckKind.HEARTBEAT


def _describe_field(obj: Managed, attr: str, old: Any, new: Any) -> str:
    if attr == "managed_by_config":
        return "now managed by the file"
    keys = CHECK_KEYS if isinstance(obj, HealthCheck) else COMPONENT_KEYS
    key = _key_of(attr, keys)
    if attr in ("headers", "body"):
        return f"{key} changed"  # may hold credentials: never printed
    if isinstance(obj, HealthCheck) and attr in DURATIONS:
        return f"{key} {_show_duration(old, attr)} → {_show_duration(new, attr)}"
    return f"{key} {_show(old)} → {_show(new)}"


# Check fields that hold durations, and what one of their units is in seconds.
DURATIONS = {"interval": 1, "timeout": 1, "grace": 1, "degraded_latency_ms": 0.001}


def _show_duration(value: float | None, attr: str) -> str:
    if value is None:
        return "none"
    seconds = value * DURATIONS[attr]
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, models.Model):
        return f'"{value}"'
    if isinstance(value, Decimal):
        return percent_text(value)
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= 60 else shown[:59] + "…"


def plan(config: Config, *, prune: bool = False) -> Plan:
    """The changes that make the database say what the file says; reads, never writes."""
    problems: list[Problem] = []
    changes: list[Change] = []

    groups = _match(ComponentGroup.objects.all(), config.groups, "group", problems)
    components = _match(Component.objects.all(), config.components, "component", problems)
    if problems:
        raise ConfigError(config.source, problems)

    group_objects: dict[str, ComponentGroup] = {}
    for declared in config.groups:
        group = groups.get(declared.name) or ComponentGroup(name=declared.name)
        group_objects[declared.name] = group
        changes += _changes(group, declared.values)

    existing_checks: dict[tuple[int, str], HealthCheck] = {
        (check.component_id, check.name): check
        for check in HealthCheck.objects.filter(
            component__in=[c for c in components.values() if c.pk]
        )
    }
    declared_checks: set[int] = set()
    check_changes: list[Change] = []
    for declared_component in config.components:
        component = components.get(declared_component.name) or Component(
            name=declared_component.name
        )
        group = group_objects.get(declared_component.group or "")
        changes += _changes(component, declared_component.values, group=group)
        for declared in declared_component.checks:
            check = existing_checks.get((component.pk, declared.name))
            if check is None:
                check = HealthCheck(component=component, name=declared.name)
            else:
                declared_checks.add(check.pk)
                check.component = component  # the same object the plan saves
            check_changes += _changes(check, declared.values)
    changes += check_changes

    deletions, kept = _stale(
        declared_groups={group.pk for group in group_objects.values() if group.pk},
        declared_components={component.pk for component in components.values()},
        declared_checks=declared_checks,
        prune=prune,
    )
    return Plan(config.source, changes + deletions, kept)


def _stale(
    *,
    declared_groups: set[int],
    declared_components: set[int],
    declared_checks: set[int],
    prune: bool,
) -> tuple[list[Change], list[str]]:
    """Managed objects the file no longer declares: deleted with prune, unless that would
    delete what people made in the admin along with them. Returns (deletions, kept)."""
    kept: list[str] = []
    stale_checks = (
        HealthCheck.objects.filter(managed_by_config=True)
        .exclude(pk__in=declared_checks)
        .select_related("component")
    )
    stale_components = list(
        Component.objects.filter(managed_by_config=True).exclude(pk__in=declared_components)
    )
    stale_groups = ComponentGroup.objects.filter(managed_by_config=True).exclude(
        pk__in=declared_groups
    )
    deleted_checks: list[Change] = []
    deleted_components: list[Change] = []
    deleted_groups: list[Change] = []
    stale_component_ids = {component.pk for component in stale_components}
    for component in stale_components:
        if not prune:
            kept.append(f"{_label(component)}: no longer in the file (--prune deletes it)")
        elif component.checks.filter(managed_by_config=False).exists():
            kept.append(f"{_label(component)}: it has checks made in the admin")
        else:
            count = component.checks.count()
            note = f"and its {count} check{'s' if count != 1 else ''}" if count else ""
            deleted_components.append(Change(DELETE, component, note=note))
    gone = {change.obj.pk for change in deleted_components}
    for check in stale_checks:
        # A check goes with its component; it is listed apart when its component stays.
        if check.component_id in (gone if prune else stale_component_ids):
            continue
        if not prune:
            kept.append(f"{_label(check)}: no longer in the file (--prune deletes it)")
        else:
            deleted_checks.append(Change(DELETE, check))
    for group in stale_groups:
        if not prune:
            kept.append(f"{_label(group)}: no longer in the file (--prune deletes it)")
        elif (
            group.components.filter(managed_by_config=False)
            .exclude(pk__in=declared_components)  # these move to their declared group
            .exists()
        ):
            kept.append(f"{_label(group)}: it holds components made in the admin")
        else:
            deleted_groups.append(Change(DELETE, group))
    return deleted_checks + deleted_components + deleted_groups, kept


def _match(
    existing: Iterable[Any], declared: list[Any], what: str, problems: list[Problem]
) -> dict[str, Any]:
    """The existing objects the file names, by name; a name two objects share is a problem."""
    by_name: dict[str, list[Any]] = defaultdict(list)
    for obj in existing:
        by_name[obj.name].append(obj)
    matched = {}
    for item in declared:
        found = by_name.get(item.name, [])
        if len(found) > 1:
            problems.append(
                Problem(
                    item.line,
                    f"{item.path}.name",
                    f'{len(found)} {what}s are named "{item.name}"; rename or delete all but '
                    "one in the admin so the file can tell which it means",
                )
            )
        elif found:
            matched[item.name] = found[0]
    return matched


def _changes(
    obj: Managed, values: dict[str, Any], *, group: ComponentGroup | None = None
) -> list[Change]:
    wanted = {**values, "managed_by_config": True}
    if isinstance(obj, Component):
        wanted["group"] = group
    if obj.pk is None:
        for attr, value in wanted.items():
            setattr(obj, attr, value)  # unsaved: the plan describes it as it will be
        return [Change(CREATE, obj, wanted)]
    old = {attr: getattr(obj, attr) for attr in wanted}
    differing = {attr: new for attr, new in wanted.items() if not _same_value(old[attr], new)}
    if not differing:
        return []
    return [Change(UPDATE, obj, differing, {attr: old[attr] for attr in differing})]


def _same_value(old: Any, new: Any) -> bool:
    if isinstance(old, models.Model) or isinstance(new, models.Model):
        # A related object: the same row, or none on both sides; unsaved means new.
        return old is new or (
            old is not None and new is not None and new.pk is not None and old.pk == new.pk
        )
    return old == new


# Applying: one transaction, status never touched.


def apply(planned: Plan) -> None:
    """Write the plan: creates and updates first (groups, components, checks), then deletes.

    Groups and components go through their services; the whole plan publishes once (the
    page may show checks' response times too).
    """
    with public_write():
        for change in planned.changes:
            if change.action == DELETE:
                _delete(change.obj)
            elif change.action == CREATE:
                _create(change.obj, change.values)
            else:
                _update(change.obj, change.values)


def _create(obj: Managed, values: dict[str, Any]) -> None:
    if isinstance(obj, HealthCheck):
        _set(obj, values)
        obj.save()
        return
    created: Component | ComponentGroup
    if isinstance(obj, Component):
        created = component_create(name=obj.name, **values)
    else:
        created = component_group_create(name=obj.name, **values)
    # Later changes (a group's components, a component's checks) point at the plan's object.
    obj.pk, obj.public_id = created.pk, created.public_id
    obj._state.adding = False


def _update(obj: Managed, values: dict[str, Any]) -> None:
    if isinstance(obj, HealthCheck):
        _set(obj, values)
        obj.save(update_fields=[*values, "updated_at"])
        return
    if isinstance(obj, Component):
        if "group" in values:
            values = {"position": obj.position, **values}  # the file's position, not last
        component_update(component=obj, changes=values)
    else:
        component_group_update(group=obj, changes=values)
    _set(obj, values)  # the plan's object describes what was done


def _delete(obj: Managed) -> None:
    if isinstance(obj, HealthCheck):
        obj.delete()
    elif isinstance(obj, Component):
        component_delete(component=obj)
    else:
        component_group_delete(group=obj)


def _set(obj: Managed, values: dict[str, Any]) -> None:
    for attr, value in values.items():
        setattr(obj, attr, value)


def apply_config(text: str, *, source: str, prune: bool = False, dry_run: bool = False) -> Plan:
    """Parse, plan and (unless a dry run) apply a beacon.yaml; ConfigError when it is wrong."""
    config = parse(text, source=source)
    with transaction.atomic():
        result = plan(config, prune=prune)
        if not dry_run:
            apply(result)
    return result

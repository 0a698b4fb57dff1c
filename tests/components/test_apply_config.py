"""`manage.py apply_config`: the status page's structure declared in a YAML file."""

from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.forms.models import model_to_dict

from components.models import (
    CheckKind,
    Component,
    ComponentGroup,
    ComponentStatus,
    HealthCheck,
)
from statuspage.public import public_cache
from tests.components.factories import ComponentFactory, ComponentGroupFactory, HealthCheckFactory

EXAMPLE = """\
groups:
  - name: Platform
components:
  - name: Public API
    group: Platform
    description: REST API for developers
    checks:
      - name: API health
        type: http
        url: https://api.example.com/health
        interval: 30s
        timeout: 5s
        expect_status: [200]
        failures_before_down: 3
      - name: API port
        type: tcp
        host: api.example.com
        port: 443
"""

DOCS = Path(__file__).resolve().parents[2] / "docs"
DOCS_EXAMPLE = DOCS / "beacon.example.yaml"


@pytest.fixture
def beacon(tmp_path):
    """Write a beacon.yaml; returns its path."""

    def write(text: str) -> Path:
        path = tmp_path / "beacon.yaml"
        path.write_text(text)
        return path

    return write


def apply(path: Path, *options: str) -> str:
    out = StringIO()
    call_command("apply_config", str(path), *options, stdout=out)
    return out.getvalue()


def apply_failing(path: Path, *options: str) -> str:
    err = StringIO()
    with pytest.raises(CommandError, match="nothing was written"):
        call_command("apply_config", str(path), *options, stdout=StringIO(), stderr=err)
    return err.getvalue()


def database() -> dict:
    """Everything the command may write, to compare before and after."""
    return {
        model.__name__: sorted(
            (model_to_dict(obj) | {"updated_at": obj.updated_at} for obj in model.objects.all()),
            key=lambda row: row["id"],
        )
        for model in (ComponentGroup, Component, HealthCheck)
    }


def test_the_example_creates_a_group_a_component_and_two_checks(page, beacon):
    output = apply(beacon(EXAMPLE))

    group = ComponentGroup.objects.get()
    component = Component.objects.get()
    health, port = HealthCheck.objects.order_by("name")
    assert group.name == "Platform" and group.managed_by_config
    assert component.name == "Public API" and component.group == group
    assert component.description == "REST API for developers" and component.managed_by_config
    assert (health.name, health.kind, health.url) == (
        "API health",
        CheckKind.HTTP,
        "https://api.example.com/health",
    )
    assert (health.interval, health.timeout, health.expect_status) == (30, 5.0, [200])
    assert health.failures_before_down == 3 and health.managed_by_config
    assert (port.kind, port.host, port.port) == ("tcp", "api.example.com", 443)
    assert port.interval == 60 and port.timeout == 10.0  # the model's defaults
    assert port.component == component and port.managed_by_config
    assert 'created group "Platform"' in output
    assert 'created check "API port" (tcp) of "Public API"' in output
    assert "4 created, 0 updated, 0 deleted." in output


def test_applying_twice_changes_nothing_the_second_time(page, beacon):
    path = beacon(EXAMPLE)
    apply(path)
    before = database()

    output = apply(path)

    assert output.strip() == f"{path}: nothing to change."
    assert database() == before  # updated_at included: nothing was saved


def test_changing_the_interval_updates_the_check_in_place(page, beacon):
    apply(beacon(EXAMPLE))
    check = HealthCheck.objects.get(name="API health")

    output = apply(beacon(EXAMPLE.replace("interval: 30s", "interval: 2m")))

    updated = HealthCheck.objects.get(name="API health")
    assert updated.pk == check.pk and updated.interval == 120
    assert 'updated check "API health" (http) of "Public API": interval 30s → 2m' in output
    assert HealthCheck.objects.count() == 2 and Component.objects.count() == 1


def test_a_key_left_out_goes_back_to_the_default(page, beacon):
    apply(beacon(EXAMPLE))

    apply(beacon(EXAMPLE.replace("        timeout: 5s\n", "")))

    assert HealthCheck.objects.get(name="API health").timeout == 10.0


def test_dry_run_prints_the_plan_and_writes_nothing(page, beacon):
    output = apply(beacon(EXAMPLE), "--dry-run")

    assert not ComponentGroup.objects.exists()
    assert not Component.objects.exists() and not HealthCheck.objects.exists()
    assert "(dry run: nothing written)" in output
    assert 'create group "Platform"' in output
    assert 'create component "Public API"' in output
    assert 'create check "API health" (http) of "Public API"' in output
    assert "4 to create, 0 to update, 0 to delete." in output


def test_dry_run_of_a_change_leaves_the_rows_alone(page, beacon):
    apply(beacon(EXAMPLE))
    before = database()

    output = apply(beacon(EXAMPLE.replace("port: 443", "port: 8443")), "--dry-run")

    assert 'update check "API port" (tcp) of "Public API": port 443 → 8443' in output
    assert database() == before


def test_prune_deletes_a_managed_check_the_file_dropped_but_not_one_made_in_the_admin(page, beacon):
    apply(beacon(EXAMPLE))
    component = Component.objects.get()
    admin_check = HealthCheckFactory(component=component, name="Made by staff")
    without_port = EXAMPLE.split("      - name: API port")[0]

    kept = apply(beacon(without_port))
    assert HealthCheck.objects.filter(name="API port").exists()
    assert 'kept check "API port" (tcp) of "Public API": no longer in the file' in kept

    pruned = apply(beacon(without_port), "--prune")

    assert 'deleted check "API port" (tcp) of "Public API"' in pruned
    assert set(HealthCheck.objects.values_list("name", flat=True)) == {
        "API health",
        "Made by staff",
    }
    admin_check.refresh_from_db()
    assert not admin_check.managed_by_config


def test_prune_deletes_a_managed_component_but_never_one_made_in_the_admin(page, beacon):
    apply(beacon(EXAMPLE))
    admin_component = ComponentFactory(name="Made by staff")
    admin_group = ComponentGroupFactory(name="Staff group")
    only_the_group = "groups:\n  - name: Platform\ncomponents: []\n"

    output = apply(beacon(only_the_group), "--prune")

    assert 'deleted component "Public API" (and its 2 checks)' in output
    assert set(Component.objects.values_list("name", flat=True)) == {admin_component.name}
    assert not HealthCheck.objects.exists()
    assert set(ComponentGroup.objects.values_list("name", flat=True)) == {
        "Platform",
        admin_group.name,
    }


def test_prune_keeps_a_managed_component_with_checks_made_in_the_admin(page, beacon):
    apply(beacon(EXAMPLE))
    component = Component.objects.get()
    admin_check = HealthCheckFactory(component=component, name="Made by staff")

    output = apply(beacon("groups:\n  - name: Platform\ncomponents: []\n"), "--prune")

    assert 'kept component "Public API": it has checks made in the admin' in output
    assert 'deleted check "API port" (tcp) of "Public API"' in output
    assert list(component.checks.all()) == [admin_check]


def test_prune_keeps_a_managed_group_that_holds_components_made_in_the_admin(page, beacon):
    apply(beacon(EXAMPLE))
    group = ComponentGroup.objects.get()
    admin_component = ComponentFactory(name="Made by staff", group=group)

    output = apply(beacon("groups: []\ncomponents: []\n"), "--prune")

    assert 'kept group "Platform": it holds components made in the admin' in output
    admin_component.refresh_from_db()
    assert admin_component.group == group
    assert not Component.objects.filter(name="Public API").exists()


def test_a_component_made_in_the_admin_is_adopted_by_name_and_keeps_its_status(page, beacon):
    existing = ComponentFactory(name="Public API", major_outage=True)

    output = apply(beacon(EXAMPLE))

    component = Component.objects.get()
    assert component.pk == existing.pk and component.managed_by_config
    assert component.status == ComponentStatus.MAJOR_OUTAGE
    assert component.description == "REST API for developers"
    assert 'updated component "Public API":' in output and "now managed by the file" in output


def test_a_component_moves_to_a_group_the_same_file_creates(page, beacon):
    apply(beacon(EXAMPLE))
    component = Component.objects.get()

    output = apply(
        beacon(
            EXAMPLE.replace("groups:\n", "groups:\n  - name: Core\n").replace(
                "group: Platform", "group: Core"
            )
        )
    )

    component.refresh_from_db()
    assert component.group.name == "Core" and component.group.managed_by_config
    assert 'updated component "Public API": group "Platform" → "Core"' in output


def test_components_take_their_position_from_the_file_order(page, beacon):
    apply(
        beacon("components:\n  - name: Zeta\n  - name: Alpha\n  - name: Middle\n    position: 10\n")
    )

    assert list(Component.objects.order_by("position").values_list("name", "position")) == [
        ("Zeta", 1),
        ("Alpha", 2),
        ("Middle", 10),
    ]


def test_a_condition_sets_the_comparison_and_threshold(page, beacon):
    apply(
        beacon(
            "components:\n"
            "  - name: Checkout\n"
            "    auto_incident: off\n"
            "    checks:\n"
            "      - name: Errors\n"
            "        type: prometheus\n"
            "        url: https://prometheus.example.com\n"
            "        query: rate(errors_total[5m])\n"
            '        condition: ">= 0.05"\n'
            "        degraded_latency: 1.5s\n"
        )
    )

    check = HealthCheck.objects.get()
    assert (check.comparison, check.threshold, check.degraded_latency_ms) == (">=", 0.05, 1500)
    assert check.component.auto_incident == "off"  # not YAML 1.1's false


def test_a_new_heartbeat_prints_its_ping_url(page, beacon):
    output = apply(
        beacon(
            "components:\n"
            "  - name: Backups\n"
            "    checks:\n"
            "      - name: Nightly\n"
            "        type: heartbeat\n"
            "        interval: 24h\n"
            "        grace: 1h\n"
        )
    )

    check = HealthCheck.objects.get()
    assert (check.interval, check.grace) == (86400, 3600)
    assert f"ping URL: https://status.acme.test/ping/{check.ping_token}/" in output


def test_a_change_to_a_check_makes_the_public_pages_stale(
    page, beacon, django_capture_on_commit_callbacks
):
    # Groups and components publish by signal; checks (shown on the page) by the command.
    apply(beacon(EXAMPLE))
    before = public_cache.generation()

    with django_capture_on_commit_callbacks(execute=True):
        apply(beacon(EXAMPLE.replace("timeout: 5s", "timeout: 3s")))

    assert public_cache.generation() != before


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            ("interval: 30s", "interval: 10x"),
            ':11: components[0].checks[0].interval: "10x" is not a duration (use 10s, 5m, 1h)',
            id="bad duration",
        ),
        pytest.param(
            ("interval: 30s", "intervall: 30s"),
            ":11: components[0].checks[0].intervall: unknown field 'intervall'; "
            "did you mean 'interval'?",
            id="unknown key",
        ),
        pytest.param(
            ("group: Platform", "group: Platfrom"),
            ':5: components[0].group: no group named "Platfrom" is declared under groups; '
            "did you mean 'Platform'?",
            id="unknown group",
        ),
        pytest.param(
            ("port: 443", "port: https"),
            ':18: components[0].checks[1].port: "https" is not a whole number',
            id="wrong type for port",
        ),
        pytest.param(
            ("        url: https://api.example.com/health\n", ""),
            ":8: components[0].checks[0].url: missing: This check kind needs it.",
            id="http without url",
        ),
        pytest.param(
            ("interval: 30s", "interval: 5s"),
            ":11: components[0].checks[0].interval: "
            "Ensure this value is greater than or equal to 10.",
            id="the model's own rule",
        ),
        pytest.param(
            ("expect_status: [200]", "expect_status: [200, 700]"),
            ":13: components[0].checks[0].expect_status: "
            "A list of status codes between 100 and 599.",
            id="the kind's own rule",
        ),
        pytest.param(
            ("host: api.example.com", "host: $(id)"),
            ":17: components[0].checks[1].host: '$(id)' is not a valid host name",
            id="a shell command for a host",
        ),
        pytest.param(
            ("host: api.example.com", 'host: "api.example.com\\nreboot"'),
            ":17: components[0].checks[1].host: A host name has no spaces or control characters.",
            id="a control character in a host",
        ),
        pytest.param(
            ("host: api.example.com", 'host: "::ffff:169.254.169.254"'),
            ":17: components[0].checks[1].host: Refused: ::ffff:a9fe:a9fe (169.254.169.254) "
            "is a cloud metadata address.",
            id="a metadata address in IPv6 dress",
        ),
        pytest.param(
            ("url: https://api.example.com/health", "url: http://[64:ff9b::a9fe:a9fe]/latest/"),
            ":10: components[0].checks[0].url: Refused: 64:ff9b::a9fe:a9fe (169.254.169.254) "
            "is a cloud metadata address.",
            id="a metadata address behind NAT64",
        ),
        pytest.param(
            ("type: tcp", "type: tpc"),
            ':16: components[0].checks[1].type: "tpc" is not one of',
            id="unknown type",
        ),
    ],
)
def test_an_error_names_line_and_field_and_nothing_is_written(page, beacon, change, expected):
    apply(beacon(EXAMPLE))
    before = database()
    # The same file also changes what is right in it: none of that may be written either.
    wrong = EXAMPLE.replace(*change).replace("REST API for developers", "Changed")
    assert wrong != EXAMPLE.replace("REST API for developers", "Changed")
    path = beacon(wrong + "  - name: Another component\n")

    errors = apply_failing(path)

    assert f"{path}{expected}" in errors
    assert database() == before


SLA_TERMS = """\
groups:
  - name: Platform
    sla_target: 99.9
    sla_credit_tiers:
      - {below: 99.9, credit: 10}
      - {below: 99, credit: 25}
components:
  - name: Public API
    group: Platform
    sla_target: 99.95
  - name: Website
    group: Platform
"""


def test_sla_terms_are_set_from_the_file_and_a_component_without_keeps_its_groups(page, beacon):
    out = apply(beacon(SLA_TERMS))

    group = ComponentGroup.objects.get(name="Platform")
    assert group.sla_target == Decimal("99.9")
    assert group.sla_credit_tiers == [{"below": 99.9, "credit": 10}, {"below": 99.0, "credit": 25}]
    assert Component.objects.get(name="Public API").sla_target == Decimal("99.95")
    assert Component.objects.get(name="Website").sla_target is None  # the group's apply
    assert "Public API" in out
    assert apply(beacon(SLA_TERMS)).endswith("nothing to change.\n")


def test_sla_terms_left_out_of_the_file_are_cleared(page, beacon):
    apply(beacon(SLA_TERMS))

    apply(beacon(SLA_TERMS.replace("    sla_target: 99.95\n", "")))

    assert Component.objects.get(name="Public API").sla_target is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("sla_target: 99.95", "sla_target: lots"), '"lots" is not a number'),
        (("sla_target: 99.95", "sla_target: 101"), "sla_target:"),
        (("sla_target: 99.95", "sla_target: [99]"), "expected a single value"),
        (("sla_target: 99.95", "sla_target: .inf"), "sla_target:"),
        (("{below: 99, credit: 25}", "{below: 99.99, credit: 25}"), "sla_credit_tiers:"),
        (("{below: 99, credit: 25}", "{below: 99, credit: -5}"), "sla_credit_tiers:"),
        (("{below: 99, credit: 25}", "{below: 99}"), "item 2: a tier has exactly the keys"),
        (("{below: 99, credit: 25}", "{below: 99, credit: lots}"), "item 2:"),
        (("- {below: 99, credit: 25}", "- 25"), "item 2: expected a mapping"),
    ],
    ids=[
        "words",
        "over 100",
        "a list",
        "infinity",
        "unordered",
        "negative",
        "no credit",
        "words",
        "a number",
    ],
)
def test_bad_sla_terms_name_their_line_and_nothing_is_written(page, beacon, change, expected):
    errors = apply_failing(beacon(SLA_TERMS.replace(*change)))

    assert expected in errors
    assert not ComponentGroup.objects.exists()


def test_every_error_in_the_file_is_reported_at_once(page, beacon):
    path = beacon(
        EXAMPLE.replace("interval: 30s", "interval: soon")
        .replace("port: 443", "port: [443]")
        .replace("description:", "descripton:")
    )

    errors = apply_failing(path).splitlines()

    assert errors == [
        f"{path}:6: components[0].descripton: unknown field 'descripton'; "
        "did you mean 'description'?",
        f'{path}:11: components[0].checks[0].interval: "soon" is not a duration (use 10s, 5m, 1h)',
        f"{path}:18: components[0].checks[1].port: expected a single value, got a list",
    ]
    assert not Component.objects.exists()


def test_a_yaml_syntax_error_names_the_line(page, beacon):
    path = beacon(EXAMPLE.replace("    description: REST API", "   description: [REST API"))

    errors = apply_failing(path)

    assert errors.startswith(f"{path}:6: invalid YAML:")
    assert not ComponentGroup.objects.exists()


def test_names_repeated_in_the_file_are_an_error(page, beacon):
    path = beacon(EXAMPLE + "      - name: API port\n        type: tcp\n")

    errors = apply_failing(path)

    assert (
        f'{path}:19: components[0].checks[2].name: another check is named "API port" '
        "(line 15); names must be unique"
    ) in errors


def test_a_name_two_existing_components_share_is_an_error(page, beacon):
    ComponentFactory.create_batch(2, name="Public API")

    errors = apply_failing(beacon(EXAMPLE))

    assert ':4: components[0].name: 2 components are named "Public API"' in errors
    assert not ComponentGroup.objects.exists()


def test_the_documented_example_applies(page):
    kinds = {
        check["type"]
        for component in yaml.safe_load(DOCS_EXAMPLE.read_text())["components"]
        for check in component.get("checks", [])
    }
    assert kinds == set(CheckKind.values), "docs/beacon.example.yaml shows every check type"

    planned = apply(DOCS_EXAMPLE, "--dry-run")
    assert "to create, 0 to update, 0 to delete." in planned
    assert not Component.objects.exists()

    applied = apply(DOCS_EXAMPLE)
    assert HealthCheck.objects.count() == planned.count("create check")
    assert set(HealthCheck.objects.values_list("kind", flat=True)) == set(CheckKind.values)
    assert "ping URL: https://status.acme.test/ping/" in applied
    assert apply(DOCS_EXAMPLE).strip().endswith("nothing to change.")


def test_the_guide_shows_the_documented_example_as_it_is():
    guide = (DOCS / "health-checks.md").read_text()

    assert f"```yaml\n{DOCS_EXAMPLE.read_text()}```" in guide

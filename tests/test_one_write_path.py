"""One write path: everything the public sees is written by a service, and the service
makes the public outputs stale.

Every SQL write (INSERT, UPDATE, DELETE) to a table behind the public page is recorded with
the innermost frame of Beacon's own code that issued it: that frame must be in a
`services.py`. The model signals that also make the page stale (statuspage/apps.py, a net
for writes made in a shell) are disconnected, so each operation that wrote a public row
must have moved the public generation by itself: a bulk `.update()` sends no signal, and a
service that forgot to publish would leave the page stale.
"""

import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from io import StringIO
from pathlib import Path
from types import FrameType

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.urls import reverse
from django.utils import timezone

from components.alerts.models import AlertIntegration, AlertKind
from components.config import apply_config
from components.models import (
    Component,
    ComponentGroup,
    ComponentStatus,
    ComponentStatusChange,
    DailyUptime,
)
from components.tasks import roll_up_uptime, run_checks
from incidents.models import (
    AffectedComponent,
    Incident,
    IncidentStatus,
    IncidentUpdate,
    IncidentUpdateTranslation,
    MaintenanceSeries,
)
from incidents.services import incident_resolve
from incidents.tasks import advance_scheduled_maintenances
from statuspage.models import PageSettings
from statuspage.public import public_cache
from statuspage.public.changes import on_public_row_changed
from tests.components.factories import (
    ComponentFactory,
    ComponentGroupFactory,
    HealthCheckFactory,
)
from tests.components.test_admin import form_data as component_form
from tests.incidents.factories import (
    StaffFactory,
    open_incident,
    schedule_maintenance,
    sign_in_staff,
)
from tests.incidents.test_admin import add_data as incident_add_data
from tests.incidents.test_admin import change_data as incident_change_data
from tests.incidents.test_postmortems import editor_data as postmortem_editor_data
from tests.statuspage.test_api_v1_components import api_for

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[1]
APPS = ("components", "incidents", "statuspage")
PUBLIC_MODELS = (
    PageSettings,
    ComponentGroup,
    Component,
    ComponentStatusChange,
    DailyUptime,
    Incident,
    IncidentUpdate,
    AffectedComponent,
    IncidentUpdateTranslation,
    MaintenanceSeries,
)
PUBLIC_TABLES = {model._meta.db_table for model in PUBLIC_MODELS} | {
    Incident.components.through._meta.db_table,
    MaintenanceSeries.components.through._meta.db_table,
}
WRITE = re.compile(r'\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"(?P<table>\w+)"', re.IGNORECASE)
ALERT_PAYLOADS = ROOT / "tests" / "components" / "alert_payloads"


def _writer(frame: FrameType | None) -> str:
    """The innermost frame of Beacon's own code (not a library's, not a test's)."""
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.is_relative_to(ROOT):
            relative = path.relative_to(ROOT)
            if relative.parts[0] in APPS:
                return f"{relative}:{frame.f_lineno} {frame.f_code.co_name}"
        frame = frame.f_back
    return "no code of Beacon's"


def _is_service(writer: str) -> bool:
    path = writer.split(":", 1)[0]
    return path.endswith("/services.py") or "/migrations/" in path


@dataclass
class Write:
    table: str
    writer: str


@dataclass
class Operation:
    name: str
    writes: list[Write] = field(default_factory=list)
    published: bool = False

    @property
    def outside_services(self) -> list[tuple[str, str, str]]:
        return [(self.name, w.table, w.writer) for w in self.writes if not _is_service(w.writer)]


class Recorder:
    """Runs operations, recording their public writes and whether the generation moved."""

    def __init__(self, capture_on_commit):
        self.capture_on_commit = capture_on_commit
        self.operations: list[Operation] = []
        self._current: Operation | None = None

    def __call__(self, execute, sql, params, many, context):
        match = WRITE.match(sql)
        if match and match["table"] in PUBLIC_TABLES and self._current is not None:
            self._current.writes.append(Write(match["table"], _writer(sys._getframe(1))))
        return execute(sql, params, many, context)

    def run(self, name: str, action: Callable[[], object]) -> Operation:
        operation = Operation(name)
        before = public_cache.generation()
        self._current = operation
        try:
            with connection.execute_wrapper(self), self.capture_on_commit(execute=True):
                action()
        finally:
            self._current = None
        operation.published = public_cache.generation() != before
        self.operations.append(operation)
        return operation


@pytest.fixture
def signals_off() -> Iterator[None]:
    """Only the services publish: the signal net of statuspage/apps.py is taken away."""
    for model in (PageSettings, ComponentGroup, Component, Incident, IncidentUpdate):
        post_save.disconnect(on_public_row_changed, sender=model)
        post_delete.disconnect(on_public_row_changed, sender=model)
    for model in (AffectedComponent, IncidentUpdateTranslation, MaintenanceSeries):
        post_save.disconnect(on_public_row_changed, sender=model)
        post_delete.disconnect(on_public_row_changed, sender=model)
    m2m_changed.disconnect(on_public_row_changed, sender=Incident.components.through)
    m2m_changed.disconnect(on_public_row_changed, sender=MaintenanceSeries.components.through)
    yield
    for model in (*PUBLIC_MODELS, AffectedComponent):
        if model in (ComponentStatusChange, DailyUptime):
            continue
        post_save.connect(on_public_row_changed, sender=model)
        post_delete.connect(on_public_row_changed, sender=model)
    m2m_changed.connect(on_public_row_changed, sender=Incident.components.through)
    m2m_changed.connect(on_public_row_changed, sender=MaintenanceSeries.components.through)


@pytest.fixture
def recorder(page, signals_off, django_capture_on_commit_callbacks) -> Recorder:
    return Recorder(django_capture_on_commit_callbacks)


def posted(response, status: int = 302):
    assert response.status_code == status, response.content[:2000]
    return response


def assert_one_write_path(operations: list[Operation]) -> None:
    silent = [operation.name for operation in operations if not operation.writes]
    assert silent == [], "these operations wrote nothing public: the run proves nothing"
    outside = [row for operation in operations for row in operation.outside_services]
    assert outside == [], "public rows written outside the services"
    stale = [operation.name for operation in operations if not operation.published]
    assert stale == [], "public rows written without making the public outputs stale"


# The representative run: every way staff, files, clients and workers change the page.


def test_the_admin_writes_the_public_page_only_through_services_that_publish(client, recorder):
    sign_in_staff(client, StaffFactory(is_superuser=True))
    group = ComponentGroupFactory(name="Platform")
    api = ComponentFactory(name="API", group=group, position=1)
    web = ComponentFactory(name="Web")
    run = recorder.run

    run(
        "admin adds a component",
        lambda: posted(
            client.post(
                reverse("admin:components_component_add"),
                component_form(name="Billing", position=3, status=ComponentStatus.PARTIAL_OUTAGE),
            )
        ),
    )
    run(
        "admin edits a component and its status",
        lambda: posted(
            client.post(
                reverse("admin:components_component_change", args=[web.pk]),
                component_form(
                    name="Website",
                    group=group.pk,
                    position=web.position,
                    status=ComponentStatus.DEGRADED_PERFORMANCE,
                ),
            )
        ),
    )
    run(
        "admin sets a status in the component list",
        lambda: posted(
            client.post(
                reverse("admin:components_component_changelist"),
                {
                    "form-TOTAL_FORMS": 1,
                    "form-INITIAL_FORMS": 1,
                    "form-0-id": api.pk,
                    "form-0-status": ComponentStatus.MAJOR_OUTAGE,
                    "_save": "Save",
                },
            )
        ),
    )
    run(
        "admin adds a group",
        lambda: posted(
            client.post(
                reverse("admin:components_componentgroup_add"),
                {
                    "name": "Edge",
                    "description": "",
                    "position": 5,
                    "components-TOTAL_FORMS": 1,
                    "components-INITIAL_FORMS": 0,
                    "components-0-name": "CDN",
                    "components-0-position": 1,
                },
            )
        ),
    )
    run(
        "admin renames a group and one of its components inline",
        lambda: posted(
            client.post(
                reverse("admin:components_componentgroup_change", args=[group.pk]),
                {
                    "name": "Core platform",
                    "description": "",
                    "position": group.position,
                    "components-TOTAL_FORMS": 1,
                    "components-INITIAL_FORMS": 1,
                    "components-0-id": api.pk,
                    "components-0-group": group.pk,
                    "components-0-name": "Public API",
                    "components-0-position": 1,
                },
            )
        ),
    )
    run(
        "admin opens an incident",
        lambda: posted(
            client.post(
                reverse("admin:incidents_incident_add"),
                incident_add_data(**{f"component_{api.pk}": ComponentStatus.PARTIAL_OUTAGE}),
            )
        ),
    )
    incident = Incident.objects.get(name="API errors")
    run(
        "admin posts an update and corrects the first one",
        lambda: posted(
            client.post(
                reverse("admin:incidents_incident_change", args=[incident.pk]),
                incident_change_data(
                    incident,
                    status=IncidentStatus.IDENTIFIED,
                    body="Found it.",
                    **{"updates-0-body": "We are looking into the errors."},
                ),
            )
        ),
    )
    run(
        "admin changes the page's settings",
        lambda: posted(
            client.post(
                reverse("admin:statuspage_pagesettings_change", args=[PageSettings.load().pk]),
                {
                    "name": "Acme status",
                    "url": "https://status.acme.test",
                    "time_zone": "UTC",
                    "home_url": "",
                    "support_url": "",
                    "brand_color": "#0b5fff",
                    "footer_text": "",
                    "allow_email_subscribers": "on",
                    "update_interval_minutes": "30",
                    "default_language": "en",
                    "enabled_languages": ["en", "de"],
                },
            )
        ),
    )
    translated = open_incident(name="Slow logins", deliver_notifications=False).updates.get()
    run(
        "admin translates an update",
        lambda: posted(
            client.post(
                reverse("admin:incidents_incidentupdate_change", args=[translated.pk]),
                {
                    "translations-TOTAL_FORMS": "1",
                    "translations-INITIAL_FORMS": "0",
                    "translations-0-language": "de",
                    "translations-0-body": "Langsame Anmeldungen.",
                },
            )
        ),
    )
    incident_resolve(incident=translated.incident)
    run(
        "admin publishes a structured postmortem in the editor",
        lambda: posted(
            client.post(
                reverse("admin:incidents_incident_postmortem", args=[translated.incident.pk]),
                postmortem_editor_data(translated.incident) | {"_publish": "1"},
            )
        ),
    )
    # An incident nobody was told of, a component without history: staff may not delete
    # notifications sent or status changes, so the admin refuses to delete the others.
    mistake = open_incident(name="Typo", affected_components=[api], deliver_notifications=False)
    unused = ComponentFactory(name="Unused")
    for what, url in [
        ("an incident", reverse("admin:incidents_incident_delete", args=[mistake.pk])),
        ("a component", reverse("admin:components_component_delete", args=[unused.pk])),
        ("a group", reverse("admin:components_componentgroup_delete", args=[group.pk])),
    ]:
        run(f"admin deletes {what}", lambda url=url: posted(client.post(url, {"post": "yes"})))
    extra = ComponentGroupFactory(name="Spare")
    run(
        "admin deletes groups from the list",
        lambda: posted(
            client.post(
                reverse("admin:components_componentgroup_changelist"),
                {"action": "delete_selected", "_selected_action": [extra.pk], "post": "yes"},
            )
        ),
    )

    assert PageSettings.objects.get().name == "Acme status"
    assert Component.objects.get(name="Public API").group is None  # its group was deleted
    assert Component.objects.get(name="CDN").group.name == "Edge"
    assert not Component.objects.filter(name="Unused").exists()
    assert list(Incident.objects.values_list("name", flat=True)) == ["Slow logins", "API errors"]
    assert [update.body for update in incident.updates.order_by("created_at")] == [
        "We are looking into the errors.",
        "Found it.",
    ]
    assert_one_write_path(recorder.operations)


CONFIG = """\
groups:
  - name: Platform
components:
  - name: Public API
    group: Platform
    description: REST API
  - name: Website
"""


def test_a_yaml_file_writes_the_public_page_only_through_services_that_publish(recorder):
    ComponentFactory(name="Website", position=7)
    run = recorder.run

    run("apply creates", lambda: apply_config(CONFIG, source="beacon.yaml"))
    run(
        "apply updates",
        lambda: apply_config(
            CONFIG.replace("REST API", "The REST API").replace("    group: Platform\n", ""),
            source="beacon.yaml",
        ),
    )
    run(
        "apply prunes",
        lambda: apply_config("components:\n  - name: Website\n", source="beacon.yaml", prune=True),
    )

    assert list(Component.objects.values_list("name", flat=True)) == ["Website"]
    assert not ComponentGroup.objects.exists()
    assert_one_write_path(recorder.operations)


def test_the_demo_is_seeded_only_through_services_that_publish(recorder):
    run = recorder.run

    run("the demo is seeded", lambda: call_command("seed_demo", stdout=StringIO()))
    run("the demo is rebuilt", lambda: call_command("seed_demo", "--reset", stdout=StringIO()))

    assert Component.objects.filter(name="Web chat").count() == 1
    assert Incident.objects.filter(name="Elevated API latency").count() == 1
    assert PageSettings.objects.get().name == "Nimbus AI"
    assert_one_write_path(recorder.operations)


def test_api_v1_writes_the_public_page_only_through_services_that_publish(
    client, recorder, settings
):
    settings.BEACON_API_RATE_LIMIT_PER_MINUTE = 100_000
    api = api_for(client, "Admins")
    run = recorder.run
    made: dict[str, str] = {}

    def create(path: str, body: dict, key: str) -> None:
        response = posted(api.send("POST", path, body), 201)
        made[key] = response.json()["id"]

    run(
        "API creates a component",
        lambda: create(
            "/components", {"component": {"name": "API", "status": "major_outage"}}, "component"
        ),
    )
    run(
        "API edits a component",
        lambda: posted(
            api.send(
                "PATCH",
                f"/components/{made['component']}",
                {"component": {"description": "REST", "status": "operational"}},
            ),
            200,
        ),
    )
    run(
        "API creates a group",
        lambda: create(
            "/component-groups",
            {"component_group": {"name": "Core", "components": [made["component"]]}},
            "group",
        ),
    )
    run(
        "API renames a group",
        lambda: posted(
            api.send(
                "PATCH",
                f"/component-groups/{made['group']}",
                {"component_group": {"name": "Core platform"}},
            ),
            200,
        ),
    )
    run(
        "API opens an incident",
        lambda: create(
            "/incidents",
            {
                "incident": {
                    "name": "API errors",
                    "status": "investigating",
                    "components": {made["component"]: "partial_outage"},
                }
            },
            "incident",
        ),
    )
    run(
        "API resolves the incident",
        lambda: posted(
            api.send(
                "PATCH",
                f"/incidents/{made['incident']}",
                {"incident": {"status": "resolved", "body": "Fixed."}},
            ),
            200,
        ),
    )
    run(
        "API renames the page",
        lambda: posted(api.send("PATCH", "", {"page": {"name": "Acme status"}}), 200),
    )
    run(
        "API deletes the incident",
        lambda: posted(api.send("DELETE", f"/incidents/{made['incident']}"), 200),
    )
    run(
        "API deletes the group",
        lambda: posted(api.send("DELETE", f"/component-groups/{made['group']}"), 200),
    )
    run(
        "API deletes the component",
        lambda: posted(api.send("DELETE", f"/components/{made['component']}"), 204),
    )

    assert not Component.objects.exists() and not Incident.objects.exists()
    assert PageSettings.objects.get().name == "Acme status"
    assert_one_write_path(recorder.operations)


def test_workers_write_the_public_page_only_through_services_that_publish(
    client, recorder, httpserver, settings
):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True
    api = ComponentFactory(name="API")
    web = ComponentFactory(name="Web")
    check = HealthCheckFactory(
        component=web, url=httpserver.url_for("/health"), failures_before_down=1
    )
    httpserver.expect_request("/health").respond_with_data("boom", status=503)
    alerts = AlertIntegration.objects.create(name="Prometheus", kind=AlertKind.ALERTMANAGER)
    firing = (ALERT_PAYLOADS / "alertmanager_firing.json").read_text()
    maintenance = schedule_maintenance(
        starts_in=timedelta(seconds=-1), affected_components=[api], scheduled_auto_completed=False
    )
    run = recorder.run

    run(
        "a health check takes a component down",
        lambda: run_checks.run("default", [(check.pk, timezone.now().isoformat())]),
    )
    run(
        "an alert moves a component",
        lambda: posted(client.post(alerts.path, firing, content_type="application/json"), 200),
    )
    run("the scheduler starts a maintenance", advance_scheduled_maintenances.run)
    run("the uptime rollup", lambda: roll_up_uptime.run())

    web.refresh_from_db()
    maintenance.refresh_from_db()
    assert web.status == ComponentStatus.MAJOR_OUTAGE
    assert maintenance.status == IncidentStatus.IN_PROGRESS
    assert json.loads(firing)["alerts"]
    assert_one_write_path(recorder.operations)


def test_recurring_maintenance_writes_the_public_page_only_through_services_that_publish(
    client, recorder
):
    sign_in_staff(client, StaffFactory(is_superuser=True))
    api = ComponentFactory(name="API")
    start = timezone.now() + timedelta(days=1)
    run = recorder.run

    run(
        "admin adds a maintenance series",
        lambda: posted(
            client.post(
                reverse("admin:incidents_maintenanceseries_add"),
                {
                    "name": "Weekly patching",
                    "first_date": start.strftime("%Y-%m-%d"),
                    "first_time": "02:00",
                    "time_zone": "UTC",
                    "duration_minutes": "60",
                    "frequency": "weekly",
                    "weekdays": ["MO", "TH"],
                    "interval": "1",
                    "components": [api.pk],
                },
            )
        ),
    )
    series = MaintenanceSeries.objects.get()
    first, second = Incident.objects.filter(series=series).order_by("scheduled_for")[:2]
    run(
        "admin edits one occurrence alone",
        lambda: posted(
            client.post(
                reverse("admin:incidents_scheduledmaintenance_change", args=[first.pk]),
                {**incident_change_data(first), "name": "Patching, longer"},
            )
        ),
    )
    run(
        "admin cancels an occurrence",
        lambda: posted(
            client.post(
                reverse("admin:incidents_scheduledmaintenance_cancel_occurrence", args=[second.pk])
            )
        ),
    )
    run(
        "admin edits the series",
        lambda: posted(
            client.post(
                reverse("admin:incidents_maintenanceseries_change", args=[series.pk]),
                {
                    "name": "Patching",
                    "first_date": start.strftime("%Y-%m-%d"),
                    "first_time": "03:00",
                    "time_zone": "UTC",
                    "duration_minutes": "90",
                    "frequency": "weekly",
                    "weekdays": ["MO", "TH"],
                    "interval": "1",
                },
            )
        ),
    )
    first.refresh_from_db()
    assert first.name == "Patching, longer" and first.series_detached
    Incident.objects.filter(series=series).order_by("-scheduled_for").first().delete()
    run("the scheduler makes the next occurrence", advance_scheduled_maintenances.run)
    run(
        "admin deletes the series",
        lambda: posted(
            client.post(
                reverse("admin:incidents_maintenanceseries_delete", args=[series.pk]),
                {"post": "yes"},
            )
        ),
    )

    assert not MaintenanceSeries.objects.exists()
    assert not Incident.objects.filter(series_occurrence__isnull=False).exists()
    assert_one_write_path(recorder.operations)


# The guard itself: each way of writing around the services is caught.


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda c: Component.objects.filter(pk=c.pk).update(name="X"), id="update"),
        pytest.param(lambda c: (setattr(c, "name", "X"), c.save()), id="save"),
        pytest.param(lambda c: c.delete(), id="delete"),
        pytest.param(
            lambda c: ComponentGroup.objects.bulk_create([ComponentGroup(name="X")]),
            id="bulk_create",
        ),
        pytest.param(lambda c: open_incident().components.add(c), id="m2m_add"),
        pytest.param(
            lambda c: PageSettings.objects.filter(pk=1).update(name="X"), id="page_settings"
        ),
    ],
)
def test_a_public_write_around_the_services_is_caught(recorder, write):
    component = ComponentFactory(name="API")

    operation = recorder.run("a write around the services", lambda: write(component))

    assert operation.writes
    assert operation.outside_services
    with pytest.raises(AssertionError):
        assert_one_write_path([operation])


def test_a_public_write_from_beacons_code_outside_a_services_module_is_caught(recorder):
    component = ComponentFactory(name="API")
    # The same bulk update, as if written in components/selectors.py.
    rogue = compile(
        "Component.objects.filter(pk=pk).update(name='X')",
        str(ROOT / "components" / "selectors.py"),
        "exec",
    )

    operation = recorder.run(
        "a selector writing", lambda: exec(rogue, {"Component": Component, "pk": component.pk})
    )

    assert [write.writer for write in operation.writes] == ["components/selectors.py:1 <module>"]
    assert not operation.published
    with pytest.raises(AssertionError, match="outside the services"):
        assert_one_write_path([operation])


def test_a_service_write_that_does_not_publish_is_caught(recorder, monkeypatch):
    from components import publishing
    from components.services import component_update

    monkeypatch.setattr(publishing, "public_changed", lambda: None)
    component = ComponentFactory(name="API")

    operation = recorder.run(
        "a service that forgot",
        lambda: component_update(component=component, changes={"description": "REST"}),
    )

    assert operation.writes and not operation.outside_services
    with pytest.raises(AssertionError, match="without making the public outputs stale"):
        assert_one_write_path([operation])

"""One arbiter of component status (components.status): every ordered pair of sources.

Each source makes its claim through the path it takes in production (staff through
component_status_state as the admin does, the API over HTTP, incidents and maintenances
through their services, health checks against a real HTTP server, alerts through their
webhook), the first source then the second, and the table says what the component shows
and which source decided it (the cause of its last recorded change).
"""

import ast
import itertools
import json
from pathlib import Path

import pytest

from components.alerts.models import AlertIntegration, AlertKind
from components.checks.services import check_run_now
from components.models import Automation, ComponentStatus, StatusChangeCause
from components.status import (
    AUTOMATIC,
    NOT_HOLDING_INCIDENT_STATUSES,
    PEOPLE,
    Claims,
    SourceError,
    component_status_follow,
    component_status_state,
    decide,
    moved_automatically,
)
from incidents.models import CLOSED_STATUSES, IncidentStatus
from incidents.services import incident_post_update
from statuspage.api_v1.keys import api_key_create
from tests.components.factories import ComponentFactory, HealthCheckFactory
from tests.incidents.factories import StaffFactory, open_incident, schedule_maintenance

STAFF, API = StatusChangeCause.STAFF, StatusChangeCause.API
INCIDENT, MAINTENANCE = StatusChangeCause.INCIDENT, StatusChangeCause.MAINTENANCE
CHECK, ALERT = StatusChangeCause.HEALTH_CHECK, StatusChangeCause.ALERT
SOURCES = [STAFF, INCIDENT, MAINTENANCE, CHECK, ALERT, API]

OPERATIONAL = ComponentStatus.OPERATIONAL
DEGRADED = ComponentStatus.DEGRADED_PERFORMANCE
PARTIAL = ComponentStatus.PARTIAL_OUTAGE
MAJOR = ComponentStatus.MAJOR_OUTAGE
MAINTAINED = ComponentStatus.UNDER_MAINTENANCE

# What each source claims. Six sources, four statuses besides operational: the API's claim
# is the alert's, the incident's the check's, and the two rows where a person states the
# status an automatic source already set record no change (the status stays the automatic
# source's; the open incident still holds the component against checks and alerts).
CLAIMS = {
    STAFF: MAJOR,
    API: PARTIAL,
    INCIDENT: DEGRADED,
    MAINTENANCE: MAINTAINED,
    CHECK: DEGRADED,  # the check's down_status
    ALERT: PARTIAL,  # severity "error"
}

# (first, second): (the status the component shows, the source of its last change).
# A person's word is applied as given; checks and alerts do not move a component a person
# set or an open incident or maintenance names; between checks and alerts the worst wins.
TABLE = {
    (STAFF, INCIDENT): (DEGRADED, INCIDENT),
    (STAFF, MAINTENANCE): (MAINTAINED, MAINTENANCE),
    (STAFF, CHECK): (MAJOR, STAFF),
    (STAFF, ALERT): (MAJOR, STAFF),
    (STAFF, API): (PARTIAL, API),
    (INCIDENT, STAFF): (MAJOR, STAFF),
    (INCIDENT, MAINTENANCE): (MAINTAINED, MAINTENANCE),
    (INCIDENT, CHECK): (DEGRADED, INCIDENT),
    (INCIDENT, ALERT): (DEGRADED, INCIDENT),
    (INCIDENT, API): (PARTIAL, API),
    (MAINTENANCE, STAFF): (MAJOR, STAFF),
    (MAINTENANCE, INCIDENT): (DEGRADED, INCIDENT),
    (MAINTENANCE, CHECK): (MAINTAINED, MAINTENANCE),
    (MAINTENANCE, ALERT): (MAINTAINED, MAINTENANCE),
    (MAINTENANCE, API): (PARTIAL, API),
    (CHECK, STAFF): (MAJOR, STAFF),
    (CHECK, INCIDENT): (DEGRADED, CHECK),  # the same status: nothing to record
    (CHECK, MAINTENANCE): (MAINTAINED, MAINTENANCE),
    (CHECK, ALERT): (PARTIAL, ALERT),  # the worse claim wins
    (CHECK, API): (PARTIAL, API),
    (ALERT, STAFF): (MAJOR, STAFF),
    (ALERT, INCIDENT): (DEGRADED, INCIDENT),
    (ALERT, MAINTENANCE): (MAINTAINED, MAINTENANCE),
    (ALERT, CHECK): (PARTIAL, ALERT),  # a milder check does not undercut a firing alert
    (ALERT, API): (PARTIAL, ALERT),  # the same status: nothing to record
    (API, STAFF): (MAJOR, STAFF),
    (API, INCIDENT): (DEGRADED, INCIDENT),
    (API, MAINTENANCE): (MAINTAINED, MAINTENANCE),
    (API, CHECK): (PARTIAL, API),
    (API, ALERT): (PARTIAL, API),
}


def test_the_table_has_every_ordered_pair_of_sources():
    assert set(TABLE) == set(itertools.permutations(SOURCES, 2))
    assert set(SOURCES) == set(PEOPLE) | set(AUTOMATIC) == set(StatusChangeCause.values)


@pytest.fixture(autouse=True)
def allow_local_targets(settings):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True
    settings.BEACON_API_RATE_LIMIT_PER_MINUTE = 100_000


class Sources:
    """Makes each source's claim on one component, the way it is made in production."""

    def __init__(self, component, client, httpserver, page):
        self.component, self.client, self.page = component, client, page
        self.httpserver = httpserver

    def claim(self, source: str) -> None:
        getattr(self, source)()
        self.component.refresh_from_db()

    def staff(self):
        component_status_state(
            component=self.component, source=STAFF, status=CLAIMS[STAFF], actor=StaffFactory()
        )

    def api(self):
        key = api_key_create(owner=StaffFactory(groups=["Admins"]), name="Terraform")[1]
        response = self.client.patch(
            f"/api/v1/pages/{self.page.public_id}/components/{self.component.public_id}",
            data=json.dumps({"component": {"status": CLAIMS[API]}}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"OAuth {key}",
        )
        assert response.status_code == 200, response.content

    def incident(self):
        open_incident(component_statuses={self.component: CLAIMS[INCIDENT]})

    def maintenance(self):
        maintenance = schedule_maintenance(affected_components=[self.component])
        incident_post_update(incident=maintenance, status=IncidentStatus.IN_PROGRESS)

    def health_check(self):
        self.httpserver.expect_request("/health").respond_with_data("no", status=503)
        check = HealthCheckFactory(
            component=self.component,
            url=self.httpserver.url_for("/health"),
            failures_before_down=1,
            down_status=CLAIMS[CHECK],
        )
        check_run_now(check=check)

    def alert(self):
        integration = AlertIntegration.objects.create(name="Cron jobs", kind=AlertKind.GENERIC)
        alert = {
            "id": "nightly-export",
            "status": "firing",
            "labels": {"component": self.component.name, "severity": "error"},
            "summary": "The nightly export failed",
        }
        response = self.client.post(
            integration.path, json.dumps(alert), content_type="application/json"
        )
        assert response.status_code == 200, response.content


@pytest.fixture
def sources(page, client, httpserver):
    return Sources(ComponentFactory(name="API"), client, httpserver, page)


@pytest.mark.parametrize(("first", "second"), sorted(TABLE))
def test_who_decides_a_components_status(sources, first, second):
    sources.claim(first)
    assert sources.component.status == CLAIMS[first]  # alone, each source moves it

    sources.claim(second)

    last = sources.component.status_changes.order_by("-at", "-id").first()
    assert (sources.component.status, last.cause) == TABLE[(first, second)]


# The rules alone, without the database


def test_a_persons_word_is_applied_as_given():
    for source in PEOPLE:
        claims = Claims(status=MAJOR, last_cause=STAFF, automation=Automation.MANUAL)
        assert decide(source=source, claims=claims, status=OPERATIONAL) == OPERATIONAL
        assert decide(source=source, claims=claims, status=MAJOR) is None


@pytest.mark.parametrize("source", AUTOMATIC)
@pytest.mark.parametrize(
    "claims",
    [
        Claims(status=OPERATIONAL, automation=Automation.MANUAL, checks=MAJOR, alerts=(MAJOR,)),
        Claims(status=OPERATIONAL, incident_open=True, checks=MAJOR, alerts=(MAJOR,)),
        Claims(status=DEGRADED, last_cause=STAFF, checks=MAJOR, alerts=(MAJOR,)),
        Claims(status=MAINTAINED, last_cause=MAINTENANCE, checks=MAJOR, alerts=(MAJOR,)),
        Claims(status=PARTIAL, last_cause=API, checks=MAJOR, alerts=(MAJOR,)),
        Claims(status=DEGRADED, last_cause=INCIDENT, checks=MAJOR, alerts=(MAJOR,)),
    ],
    ids=["manual", "open incident", "staff", "maintenance", "api", "incident's last word"],
)
def test_checks_and_alerts_leave_a_component_people_hold(source, claims):
    assert decide(source=source, claims=claims, alerts_baseline=OPERATIONAL) is None


@pytest.mark.parametrize("person", PEOPLE)
def test_a_person_who_set_operational_holds_nothing(person):
    claims = Claims(status=OPERATIONAL, last_cause=person, checks=MAJOR, alerts=(PARTIAL,))
    assert decide(source=CHECK, claims=claims) == MAJOR
    assert decide(source=ALERT, claims=claims, alerts_baseline=OPERATIONAL) == MAJOR


def test_checks_give_back_what_they_took_when_they_are_gone():
    gone = Claims(status=MAJOR, last_cause=CHECK, checks=None)
    assert decide(source=CHECK, claims=gone) == OPERATIONAL
    assert decide(source=CHECK, claims=Claims(status=MAJOR, last_cause=ALERT)) is None
    # a check recovered while an alert fires: the alert's status, not operational
    firing = Claims(status=MAJOR, last_cause=CHECK, checks=OPERATIONAL, alerts=(DEGRADED,))
    assert decide(source=CHECK, claims=firing) == DEGRADED


def test_resolved_alerts_return_to_the_checks_or_the_status_before_them():
    resolved = Claims(status=PARTIAL, last_cause=ALERT, alerts=())
    assert decide(source=ALERT, claims=resolved, alerts_baseline=DEGRADED) == DEGRADED
    with_checks = Claims(status=PARTIAL, last_cause=ALERT, checks=OPERATIONAL)
    assert decide(source=ALERT, claims=with_checks, alerts_baseline=DEGRADED) == OPERATIONAL
    # alerts that did not make the last change undo nothing
    not_theirs = Claims(status=PARTIAL, last_cause=CHECK, alerts=(OPERATIONAL,))
    assert decide(source=ALERT, claims=not_theirs, alerts_baseline=OPERATIONAL) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "cron", "claims": Claims(status=OPERATIONAL)}, "Unknown source"),
        ({"source": "", "claims": Claims(status=OPERATIONAL)}, "Unknown source"),
        ({"source": STAFF, "claims": Claims(status=OPERATIONAL)}, "must state"),
        ({"source": CHECK, "claims": Claims(status=OPERATIONAL), "status": MAJOR}, "reports"),
        ({"source": ALERT, "claims": Claims(status=OPERATIONAL), "status": MAJOR}, "reports"),
    ],
)
def test_a_claim_a_source_cannot_make_is_refused(kwargs, message):
    with pytest.raises(SourceError, match=message):
        decide(**kwargs)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("entry", "source"),
    [
        (component_status_state, CHECK),
        (component_status_state, ALERT),
        (component_status_state, "cron"),
        (component_status_follow, STAFF),
        (component_status_follow, API),
    ],
)
def test_each_entry_point_takes_only_its_kind_of_source(entry, source):
    component = ComponentFactory(name="API")
    kwargs = {"status": MAJOR} if entry is component_status_state else {}

    with pytest.raises(SourceError):
        entry(component=component, source=source, **kwargs)

    component.refresh_from_db()
    assert component.status == OPERATIONAL and not component.status_changes.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("person", PEOPLE)
def test_a_person_stating_the_status_it_has_records_nothing(person, page):
    component = ComponentFactory(name="API", status=DEGRADED)

    assert component_status_state(component=component, source=person, status=DEGRADED) is None

    component.refresh_from_db()
    assert component.status == DEGRADED and not component.status_changes.exists()


def test_the_statuses_that_hold_nothing_are_the_incidents_closed_ones_and_scheduled():
    expected = {*CLOSED_STATUSES, IncidentStatus.SCHEDULED}
    assert set(NOT_HOLDING_INCIDENT_STATUSES) == expected


def test_incidents_hear_of_every_automatic_move(sources):
    heard = []

    def listen(sender, **kwargs):
        heard.append((kwargs["source"], kwargs["old_status"], kwargs["new_status"]))

    moved_automatically.connect(listen)
    try:
        sources.claim(CHECK)
        sources.claim(ALERT)
    finally:
        moved_automatically.disconnect(listen)
    assert heard == [
        ("health check", OPERATIONAL, DEGRADED),
        ("alert", DEGRADED, PARTIAL),
    ]


# Checks and alerts report to the arbiter and never read each other; none of them reads
# the incidents above them.

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).glob("*.py"))


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("components/checks", ("components.alerts", "components.models.AlertState")),
        ("components/alerts", ("components.checks",)),
        ("components/checks", ("incidents",)),
        ("components/alerts", ("incidents",)),
    ],
)
def test_checks_and_alerts_do_not_read_each_other_or_incidents(folder, forbidden):
    assert _modules(folder)
    found = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in _modules(folder)
        for name in _imports(path)
        if name.startswith(forbidden)
    }
    assert not found


def test_the_arbiter_does_not_import_incidents():
    assert not {name for name in _imports(ROOT / "components/status.py") if "incidents" in name}


# Every source goes through the arbiter: nothing but the arbiter (and the services module
# that defines the recorder) calls component_set_status.

RECORDER_CALLERS = {"components/status.py", "components/services.py"}


def _calls(path: Path, name: str) -> list[int]:
    """The lines of `path` that call or import `name` (as a name or an attribute)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if called == name:
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and any(a.name == name for a in node.names):
            lines.append(node.lineno)
    return lines


def test_only_the_arbiter_records_a_status_change():
    found = {
        f"{path.relative_to(ROOT)}:{line}"
        for package in ("components", "incidents", "statuspage")
        for path in sorted((ROOT / package).rglob("*.py"))
        if str(path.relative_to(ROOT)) not in RECORDER_CALLERS
        for line in _calls(path, "component_set_status")
    }
    assert not found, "call components.status.component_status_state instead"
    assert _calls(ROOT / "components/status.py", "component_set_status")


def test_the_guard_sees_a_call_around_the_arbiter(tmp_path):
    rogue = tmp_path / "rogue.py"
    rogue.write_text(
        "from components import services\n"
        "from components.services import component_set_status\n"
        "services.component_set_status(component=c, status='major_outage')\n"
    )
    assert _calls(rogue, "component_set_status") == [2, 3]

"""Hostile inbound alert bodies: refused with a 400 and a reason, nothing applied, never a 500;
implausible times clamped; bad rows already stored harm neither deliveries nor the admin."""

import contextlib
import copy
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from components.alerts.kinds import MAX_ALERTS, MAX_DEPTH
from components.alerts.models import AlertIntegration, AlertKind, AlertLog, AlertState
from components.alerts.services import FUTURE_TOLERANCE
from components.models import ComponentStatus, ComponentStatusChange
from tests.components.factories import ComponentFactory
from tests.incidents.factories import sign_in_staff

pytestmark = pytest.mark.django_db

PAYLOADS = Path(__file__).parent / "alert_payloads"


def sample(name: str) -> dict:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def generic_body() -> dict:
    return {
        "id": "nightly-export",
        "status": "firing",
        "labels": {"component": "API", "severity": "critical"},
        "summary": "The nightly export failed",
        "starts_at": "2026-03-12T02:00:00Z",
    }


# Per kind: a body that moves API, and where its strings and times are.
KIND_BODIES = {
    "alertmanager": lambda: sample("alertmanager_firing"),
    "grafana": lambda: sample("alertmanager_firing") | {"version": "1"},
    "datadog": lambda: (
        sample("datadog_triggered")
        | {"tags": "component:api,env:prod", "scope": "component:api,env:prod"}
    ),
    "generic": generic_body,
}


def labels_of(kind: str, body: dict) -> dict:
    return body if kind == "datadog" else (body.get("alerts") or [body])[0].setdefault("labels", {})


def alert_of(kind: str, body: dict) -> dict:
    return body if kind in ("datadog", "generic") else body["alerts"][0]


@pytest.fixture
def api():
    return ComponentFactory(name="API")


@pytest.fixture(params=list(KIND_BODIES))
def kind(request):
    return request.param


@pytest.fixture
def integration(kind):
    return AlertIntegration.objects.create(name=f"Tool {kind}", kind=kind)


def post(integration, body, client=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return (client or Client()).post(integration.path, data, content_type="application/json")


def assert_refused(response, reason: str = ""):
    assert response.status_code == 400, response.content[:300]
    answer = response.json()
    assert answer["error"] == "invalid_payload"
    assert reason in answer["message"]
    assert not AlertState.objects.exists()
    assert not ComponentStatusChange.objects.exists()
    assert AlertLog.objects.filter(ok=False).count() == 1  # staff see it, and it was storable


def test_each_kinds_base_body_moves_the_component(api, integration, kind):
    response = post(integration, KIND_BODIES[kind]())

    assert response.status_code == 200
    api.refresh_from_db()
    assert api.status != ComponentStatus.OPERATIONAL


# NUL and lone surrogates, anywhere


def _put_string(kind: str, body: dict, where: str, text: str) -> None:
    alert = alert_of(kind, body)
    if where == "label value":
        labels_of(kind, body)["component"] = "API" + text if kind != "datadog" else None
        if kind == "datadog":
            body["tags"] = f"component:API{text},env:prod"
    elif where == "label key":
        if kind == "datadog":
            body["tags"] = f"compo{text}nent:API"
        else:
            labels_of(kind, body)[f"team{text}"] = "core"
    elif where == "summary":
        if kind in ("alertmanager", "grafana"):
            alert["annotations"]["summary"] = f"down{text}"
        else:
            body["title" if kind == "datadog" else "summary"] = f"down{text}"
    elif where == "fingerprint":
        key = {"datadog": "alert_id", "generic": "id"}.get(kind, "fingerprint")
        alert[key] = f"fp{text}"
    elif where == "ignored field":
        body[f"extra{text}"] = {"note": f"x{text}"}


@pytest.mark.parametrize(
    "where", ["label value", "label key", "summary", "fingerprint", "ignored field"]
)
@pytest.mark.parametrize(
    ("text", "reason"), [("\x00", "NUL character"), ("\ud800", "lone UTF-16 surrogate")]
)
def test_nul_or_a_lone_surrogate_in_any_string_is_refused_and_nothing_applied(
    api, integration, kind, where, text, reason
):
    body = KIND_BODIES[kind]()
    _put_string(kind, body, where, text)

    # json.dumps writes \u0000 and \ud800 as escapes, as a sender would.
    response = post(integration, body)

    assert_refused(response, reason)
    api.refresh_from_db()
    assert api.status == ComponentStatus.OPERATIONAL


def test_a_batch_with_one_bad_alert_applies_none_of_them(api):
    web = ComponentFactory(name="Web")
    integration = AlertIntegration.objects.create(name="Jobs", kind=AlertKind.GENERIC)
    good = generic_body()
    also_good = generic_body() | {"id": "web-down", "labels": {"component": "Web"}}
    bad = generic_body() | {"id": "third", "starts_at": "2026-13-45T99:00:00Z"}

    response = post(integration, {"alerts": [good, also_good, bad]})

    assert_refused(response, "alerts[2].starts_at is not an RFC 3339 time")
    for component in (api, web):
        component.refresh_from_db()
        assert component.status == ComponentStatus.OPERATIONAL


# Bodies that break parsers


@pytest.mark.parametrize("depth", [MAX_DEPTH + 5, 5000, 100_000])
def test_deeply_nested_json_is_refused(api, integration, kind, depth):
    body = KIND_BODIES[kind]()
    nested = json.dumps(body)[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"

    response = post(integration, nested.encode())

    assert_refused(response, "nests deeper than")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"alerts": [\xff\xfe]}', "not UTF-8"),
        (b'{"alerts": ["\xed\xa0\x80"]}', "not UTF-8"),  # a surrogate encoded as UTF-8
        (b'{"alerts": [], "x": NaN}', "NaN is not a number JSON allows"),
        (b'{"alerts": [], "x": -Infinity}', "-Infinity is not a number JSON allows"),
        (b'{"alerts": [], "x": 1e999}', "too large"),
        (b'{"alerts": [], "x": ' + b"9" * 5000 + b"}", "not JSON Beacon can read"),
        (b"\x00", "not JSON"),
        (b"", "not JSON"),
        (b'"just a string"', "must be a JSON object"),
        (b"null", "must be a JSON object"),
    ],
)
def test_bodies_that_are_not_plain_json_are_refused(api, integration, raw, reason):
    assert_refused(post(integration, raw), reason)


def test_a_body_over_the_size_limit_is_refused_without_reading_it_all(api, integration, kind):
    body = KIND_BODIES[kind]()
    body["padding"] = "x" * (1024 * 1024)

    response = post(integration, body)

    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert not AlertState.objects.exists()


def test_more_alerts_than_a_delivery_may_hold_are_refused(api):
    integration = AlertIntegration.objects.create(name="Jobs", kind=AlertKind.GENERIC)
    alerts = [{"id": str(n), "status": "firing"} for n in range(MAX_ALERTS + 1)]

    assert_refused(post(integration, {"alerts": alerts}), f"at most {MAX_ALERTS}")


def test_a_label_naming_too_many_components_is_refused(api):
    integration = AlertIntegration.objects.create(name="Jobs", kind=AlertKind.GENERIC)
    body = generic_body()
    body["labels"]["component"] = ",".join(f"c{n}" for n in range(5000))

    assert_refused(post(integration, body), "names more than")


# Wrong types at every level


WRONG_TYPES = {
    "alertmanager": [
        (lambda b: b.update(alerts="all of them"), '"alerts" must be a list'),
        (lambda b: b.update(alerts=[["firing"]]), "alerts[0] must be an object"),
        (lambda b: b["alerts"][0].update(status=["firing"]), "alerts[0].status must be"),
        (lambda b: b["alerts"][0].update(labels="component=api"), "alerts[0].labels must be"),
        (lambda b: b["alerts"][0]["labels"].update(component={"a": 1}), ".component must be"),
        (lambda b: b["alerts"][0].update(annotations=[1]), "alerts[0].annotations must be"),
        (lambda b: b["alerts"][0].update(fingerprint=12), "fingerprint must be a string"),
        (lambda b: b["alerts"][0].update(startsAt=True), "startsAt is not a time"),
        (lambda b: b["alerts"][0].update(startsAt={"at": 1}), "startsAt is not a time"),
        (lambda b: b.update(version={"v": 4}), "of the webhook payload is not supported"),
    ],
    "datadog": [
        (lambda b: b.update(alert_id={"id": 1}), '"alert_id" ($ALERT_ID) must be'),
        (lambda b: b.update(alert_id=True), '"alert_id" ($ALERT_ID) must be'),
        (lambda b: b.update(transition=["Triggered"]), '"transition" must be a string'),
        (lambda b: b.update(scope=5), '"scope" must be a string'),
        (lambda b: b.update(title=["x"]), '"title" must be a string'),
        (lambda b: b.update(tags={"component": "api"}), '"tags" must be'),
        (lambda b: b.update(tags=["component:api", 5]), '"tags" must hold strings'),
        (lambda b: b.update(date=[1]), "date is not a time"),
        (lambda b: b.update(date="9" * 400), "date is not a time"),
    ],
    "generic": [
        (lambda b: b.update(id=None), 'needs an "id"'),
        (lambda b: b.update(id=["a"]), 'needs an "id"'),
        (lambda b: b.update(id=10**30), "too large to name an alert"),
        (lambda b: b.update(summary=5), "summary must be a string"),
        (lambda b: b.update(status=True), "status must be"),
        (lambda b: b.update(labels=[]), "labels must be"),
        (lambda b: b.update(starts_at=[2026]), "starts_at is not a time"),
        (lambda b: b.update(alerts={"id": "x"}), '"alerts" must be a list'),
        (lambda b: b.update(alerts=[None]), "alerts[0] must be an object"),
    ],
}


WRONG_TYPES["grafana"] = WRONG_TYPES["alertmanager"]


@pytest.mark.parametrize(
    ("kind", "change", "reason"),
    [(kind, change, reason) for kind, cases in WRONG_TYPES.items() for change, reason in cases],
)
def test_a_wrong_type_at_any_level_is_refused_with_its_place(api, kind, change, reason):
    integration = AlertIntegration.objects.create(name="Tool", kind=kind)
    body = KIND_BODIES[kind]()
    change(body)

    assert_refused(post(integration, body), reason)


def test_a_refusal_message_is_short_even_for_a_huge_value(api):
    integration = AlertIntegration.objects.create(name="Tool", kind=AlertKind.ALERTMANAGER)
    body = sample("alertmanager_firing")
    body["alerts"][0]["status"] = {"x" * 1000: "y" * 100_000}

    response = post(integration, body)

    assert_refused(response, "alerts[0].status must be")
    assert len(response.json()["message"]) < 300


# Times


def _set_time(kind: str, body: dict, value) -> None:
    key = {"alertmanager": "startsAt", "grafana": "startsAt", "datadog": "date"}.get(
        kind, "starts_at"
    )
    alert_of(kind, body)[key] = value
    if kind == "datadog":
        body.pop("last_updated", None)


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59.999999+00:00",
        "3026-01-01T00:00:00Z",
        "1970-01-01T00:00:00Z",
        "1969-07-20T20:17:00Z",
        "0002-01-01T00:00:00Z",
        "0001-01-01T00:30:00+01:00",
        253402300799,  # 9999-12-31 in seconds
        0,
        -1,
        1.5,
    ],
)
def test_an_implausible_time_counts_as_the_time_of_receipt(api, integration, kind, value):
    body = KIND_BODIES[kind]()
    _set_time(kind, body, value)
    before = timezone.now()

    response = post(integration, body)

    assert response.status_code == 200, response.content
    state = AlertState.objects.get()
    assert before <= state.event_at <= timezone.now()
    api.refresh_from_db()
    assert api.status != ComponentStatus.OPERATIONAL


def test_a_time_a_little_ahead_is_clock_skew_and_kept(api):
    integration = AlertIntegration.objects.create(name="Jobs", kind=AlertKind.GENERIC)
    ahead = timezone.now() + FUTURE_TOLERANCE - timedelta(seconds=30)

    post(integration, generic_body() | {"starts_at": ahead.isoformat()})

    assert abs(AlertState.objects.get().event_at - ahead) < timedelta(seconds=1)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("275760-09-13T00:00:00Z", "is not an RFC 3339 time"),
        ("2026-03-10T14:02:11+25:00", "is not an RFC 3339 time"),
        ("2026-03-10T14:02:11-24:00", "is not an RFC 3339 time"),
        ("2026-03-10T14:02:11", "has no time zone"),
        ("2026-03-10", "has no time zone"),
        ("next tuesday", "is not an RFC 3339 time"),
        ("9999-12-31T23:59:59-23:59", "is out of range"),
        (8.64e15, "is not a time"),  # JavaScript's last date, in milliseconds
        (-8.64e15, "is not a time"),
        (10**400, "is not a time"),  # too large for a float
        (-(10**400), "is not a time"),
        ("１２３", "is not an RFC 3339 time"),  # full-width digits
        (True, "is not a time"),
        ([], "is not a time"),
    ],
)
def test_a_time_that_is_no_time_is_refused(api, integration, kind, value, reason):
    body = KIND_BODIES[kind]()
    _set_time(kind, body, value)

    assert_refused(post(integration, body), reason)


# Rows stored before times were checked


def _far_future_state(api, integration) -> AlertState:
    post(integration, KIND_BODIES[integration.kind]())
    state = AlertState.objects.get()
    far = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    AlertState.objects.filter(pk=state.pk).update(event_at=far, starts_at=far, ends_at=far)
    return state


def test_a_far_future_time_already_stored_does_not_make_later_alerts_stale(api, integration, kind):
    _far_future_state(api, integration)
    resolved = KIND_BODIES[kind]()
    if kind == "datadog":
        resolved.update(transition="Recovered", date=None)
    else:
        alert_of(kind, resolved)["status"] = "resolved"

    response = post(integration, resolved)

    assert response.status_code == 200
    assert response.json()["changed"] == 1
    assert AlertState.objects.get().reported_firing is False


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "America/New_York"])
def test_the_admin_pages_show_a_far_future_row_stored_before_times_were_checked(
    api, client, admin_user, settings, zone
):
    settings.TIME_ZONE = zone
    integration = AlertIntegration.objects.create(name="Prometheus", kind="alertmanager")
    state = _far_future_state(api, integration)
    post(integration, b"not json")  # a log entry
    with connection.cursor() as cursor:  # as a bad migration or a restore might leave it
        cursor.execute("UPDATE components_alertlog SET received_at = '9999-12-31 23:59:59+00'")
        cursor.execute(
            "UPDATE components_alertintegration SET last_received_at = '9999-12-31 23:59:59+00'"
        )
    sign_in_staff(client, admin_user)

    pages = [
        reverse("admin:components_alertstate_changelist"),
        reverse("admin:components_alertstate_change", args=[state.pk]),
        reverse("admin:components_alertlog_changelist"),
        reverse("admin:components_alertlog_change", args=[AlertLog.objects.get().pk]),
        reverse("admin:components_alertintegration_changelist"),
        reverse("admin:components_alertintegration_change", args=[integration.pk]),
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        assert "9999" in response.content.decode(), page
    delete = reverse("admin:components_alertstate_delete", args=[state.pk])
    assert client.get(delete).status_code == 200
    assert client.post(delete, {"post": "yes"}).status_code == 302  # staff can clear it
    assert not AlertState.objects.exists()


def test_the_migration_makes_stored_impossible_times_the_time_it_runs(api):
    import importlib

    migration = importlib.import_module("components.migrations.0006_alert_states_believable_times")
    integration = AlertIntegration.objects.create(name="Prometheus", kind="alertmanager")
    state = _far_future_state(api, integration)
    sane = timezone.now() - timedelta(hours=1)
    AlertState.objects.filter(pk=state.pk).update(starts_at=sane, ends_at=None)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE components_alertstate SET event_at = 'infinity' WHERE id = %s", [state.pk]
        )
    migration.believable_times(django_apps, None)

    state.refresh_from_db()
    assert abs(state.event_at - timezone.now()) < timedelta(minutes=1)
    assert state.starts_at == sane and state.ends_at is None


# Anything else: random hostile values at random places of each kind's body


HOSTILE_VALUES = [
    None,
    True,
    0,
    -1,
    10**30,
    1e308,
    -0.0,
    "",
    " ",
    "x" * 5000,
    "\u202e\u200b",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+14:00",
    "2026-02-30T00:00:00Z",
    "$ALERT_ID",
    "a,b,,c,",
    "firing",
    "resolved",
    [],
    [None],
    {},
    {"": ""},
    {"component": ["API"]},
    [[[[[]]]]],
]


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _paths(item, (*path, n))


def _replace(body, path, new):
    if not path:
        return new
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return body


def test_random_hostile_values_anywhere_answer_200_or_400_never_500(api, integration, kind):
    rng = random.Random(f"beacon-{kind}")  # the same draws every run
    paths = list(_paths(KIND_BODIES[kind]()))
    for _ in range(100):
        body = KIND_BODIES[kind]()
        for _ in range(rng.randint(1, 3)):
            path, value = rng.choice(paths), copy.deepcopy(rng.choice(HOSTILE_VALUES))
            with contextlib.suppress(KeyError, IndexError, TypeError):  # a place now gone
                body = _replace(body, path, value)
        response = post(integration, body)
        assert response.status_code in (200, 400), (body, response.content[:300])

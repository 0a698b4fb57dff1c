"""Management API v1, byte for byte: every read and a fixed sequence of writes on one rich,
deterministic page, compared with the answers recorded in tests/fixtures/api_v1_bytes/.

The recorded answers are the API's own (see that directory's README): a change that makes
any answer differ by one byte (a refactor that renders on write or caches responses must
not) fails here with the request and a diff of both bodies. To record them again after a
deliberate change of the API's answers:

    BEACON_RECORD_API_BYTES=1 pytest tests/statuspage/test_api_v1_bytes.py

Everything a response could take from outside the data is pinned: the clock (time-machine,
moved between events so that every timestamp differs), every public id (fixed after the
dataset is built; rows a write creates get ids from a generator seeded by the request), the
page's URL and time zone, the key owner's name. Nothing depends on other tests' rows.
"""

import difflib
import json
import os
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from django.contrib.auth.models import Group, User

from components import services as component_services
from components.models import Component, ComponentGroup, StatusChangeCause
from components.status import component_status_state
from incidents import services
from incidents.models import Incident, IncidentKind, IncidentStatus, IncidentUpdate
from incidents.notify import subscriptions
from incidents.notify.models import Subscriber
from statuspage.api_v1.keys import api_key_create
from statuspage.lib import ids
from statuspage.models import PageSettings

pytestmark = [
    pytest.mark.django_db,
    # Recorded on PostgreSQL, whose jsonb gives an incident's metadata its keys in its own
    # order (SQLite keeps them as sent): CI and `make test` with DATABASE_URL compare them.
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="the answers were recorded on PostgreSQL",
    ),
]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "api_v1_bytes"
RECORDING = os.environ.get("BEACON_RECORD_API_BYTES") == "1"

PAGE = "pgacme000001"
BASE = f"/api/v1/pages/{PAGE}"
# The dataset's first event; reads happen at NOW, in the page's summer time (EDT) while the
# older events were in winter time (EST), so both offsets appear.
START = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
NOW = START + timedelta(days=14)


class _SeededSecrets:
    """statuspage.lib.ids draws public ids from `secrets`: seeded here, a row a request
    creates gets the same id on every run."""

    def __init__(self, seed: str):
        self._random = random.Random(seed)

    def choice(self, sequence):
        return self._random.choice(sequence)


@pytest.fixture
def seeded_ids(monkeypatch):
    def seed(name: str) -> None:
        monkeypatch.setattr(ids, "secrets", _SeededSecrets(name))

    seed("dataset")
    return seed


@pytest.fixture
def api_key(db) -> str:
    owner = User.objects.create(username="golden-admin", is_staff=True)
    owner.groups.add(Group.objects.get(name="Admins"))
    return api_key_create(owner=owner, name="golden")[1]


def _at(moment: datetime):
    return time_machine.travel(moment, tick=False)


def _status(component: Component, status: str) -> None:
    component_status_state(component=component, source=StatusChangeCause.STAFF, status=status)


@pytest.fixture
def dataset(settings, seeded_ids):
    """A page with something of every kind the API answers with, built through the services
    at fixed instants; returns the public ids by name."""
    settings.BEACON_API_RATE_LIMIT_PER_MINUTE = 100_000
    make = component_services.component_create
    with _at(START):
        page = PageSettings.load()
        page.name = "Acme Cloud"
        page.url = "https://status.acme.test"
        page.support_url = "https://acme.test/support"
        page.time_zone = "America/New_York"
        page.save()
        PageSettings.objects.filter(pk=page.pk).update(public_id=PAGE)
        PageSettings.forget_cached()

        platform = component_services.component_group_create(
            name="Platform",
            description='The "core" <b>services</b> & their APIs',
            sla_target=Decimal("99.9"),
            sla_credit_tiers=[{"below": 99.9, "credit": 10}, {"below": 99.0, "credit": 25}],
        )
        api = make(
            name="API",
            description="Réponses ⚡ rapides, <i>unicode</i> & \"quotes\" 'single' 🚀",
            group=platform,
            sla_target=Decimal("99.95"),
        )
        web = make(name="Web app", description="Dashboard\nand console", group=platform)
        search = make(name="Search", group=platform, only_show_if_degraded=True)
        database = make(name="Database", group=platform, internal=True)
    with _at(START + timedelta(minutes=5)):
        edge = component_services.component_group_create(name="Edge ☁️", description="")
        cdn = make(name="CDN", group=edge, start_date=date(2025, 11, 1))
        dns = make(name="DNS", group=edge, showcase=False)
        component_services.component_group_create(name="Coming soon", description="Empty.")
        billing = make(name="Billing", description="Invoices <script>alert(1)</script>")
        make(name="Status emails", internal=True)

    # A backfilled incident, history written a week after it happened.
    with _at(START + timedelta(hours=1)):
        backfilled = services.incident_create(
            name="Login failures (backfilled)",
            status=IncidentStatus.RESOLVED,
            body="Written up from our logs.",
            backfilled=True,
            started_at=START - timedelta(days=5),
            affected_components=[web],
        )
    # Maintenances: announced ahead, then started and completed by the scheduler's service.
    with _at(START + timedelta(hours=2)):
        done = services.incident_create(
            name="Database failover drill",
            kind=IncidentKind.MAINTENANCE,
            status=IncidentStatus.SCHEDULED,
            body="We will fail the primary over.",
            scheduled_for=START + timedelta(days=5),
            scheduled_until=START + timedelta(days=5, hours=2),
            affected_components=[database, api],
        )
    with _at(START + timedelta(hours=12)):
        ada = subscriptions.email_subscriber_create_confirmed(email="ada@example.test")
    with _at(START + timedelta(hours=13)):
        bob = subscriptions.email_subscriber_create_confirmed(
            email="bob@example.test", components=[dns, api, billing]
        )
    with _at(START + timedelta(hours=14)):
        hook = subscriptions.webhook_subscriber_create(
            endpoint="https://hooks.example.test/beacon?team=ops",
            email="ops@example.test",
            component_ids=[cdn.pk, web.pk],
            confirmed=True,
        )
    with _at(START + timedelta(hours=15)):
        subscriptions.subscription_request(email="Carol@Example.test")  # unconfirmed
        carol = Subscriber.objects.get(email="carol@example.test")
    with _at(START + timedelta(hours=16)):
        subscriptions.webhook_subscriber_create(endpoint="https://zz.example.test/hook")

    # Resolved incident with a published postmortem its subscribers were told of.
    with _at(START + timedelta(days=1)):
        resolved = services.incident_create(
            name="Elevated API errors",
            status=IncidentStatus.INVESTIGATING,
            body="We are seeing 5xx errors on the API.",
            component_statuses={api: "major_outage"},
        )
    with _at(START + timedelta(days=1, minutes=20)):
        services.incident_post_update(
            incident=resolved,
            status=IncidentStatus.IDENTIFIED,
            body="A bad deploy; rolling back.",
            component_statuses={api: "partial_outage"},
        )
    with _at(START + timedelta(days=1, hours=1)):
        services.incident_post_update(
            incident=resolved, status=IncidentStatus.MONITORING, body="Error rates are falling."
        )
    with _at(START + timedelta(days=1, hours=2)):
        services.incident_resolve(incident=resolved)
    with _at(START + timedelta(days=2)):
        services.postmortem_publish(
            incident=resolved,
            body="## What happened\n\nA deploy removed an **index**; p99 rose to 12 s.",
            notify_subscribers=True,
        )
    # The component the incident named is renamed afterwards.
    with _at(START + timedelta(days=3)):
        component_services.component_update(component=api, changes={"name": "Public API"})

    # An incident with an impact override and nested metadata, resolved.
    with _at(START + timedelta(days=4)):
        slow = services.incident_create(
            name="Slow dashboards",
            status=IncidentStatus.IDENTIFIED,
            body="Dashboards take 10 s to load.",
            component_statuses={web: "degraded_performance"},
            impact_override="critical",
            metadata={
                "jira": {"issue": "OPS-42", "labels": ["db", "p1"], "nested": {"depth": 2}},
                "pagerduty": {"incident": "PX1", "urgent": True, "score": 0.5},
            },
        )
    with _at(START + timedelta(days=4, minutes=30)):
        services.incident_resolve(incident=slow, body="Fixed by a cache.")

    with _at(START + timedelta(days=5)):
        services.maintenances_advance_due()
    with _at(START + timedelta(days=5, hours=2)):
        services.maintenances_advance_due()

    with _at(START + timedelta(days=6)):
        active = services.incident_create(
            name="Web app node upgrades",
            kind=IncidentKind.MAINTENANCE,
            status=IncidentStatus.SCHEDULED,
            body="Rolling upgrades of the web nodes.",
            scheduled_for=NOW - timedelta(hours=1),
            scheduled_until=NOW + timedelta(hours=3),
            affected_components=[web],
        )
    with _at(START + timedelta(days=7)):
        upcoming = services.incident_create(
            name="Edge network maintenance",
            kind=IncidentKind.MAINTENANCE,
            status=IncidentStatus.SCHEDULED,
            body="Our CDN provider upgrades its PoPs.",
            scheduled_for=NOW + timedelta(days=2),
            scheduled_until=NOW + timedelta(days=2, hours=4),
            affected_components=[cdn, dns],
            scheduled_remind_prior=False,
        )
    with _at(START + timedelta(days=8)):
        quarantined = subscriptions.email_subscriber_create_confirmed(
            email="dave@example.test", components=[billing]
        )
    with _at(START + timedelta(days=8, hours=1)):
        subscriptions.subscriber_quarantine(subscriber=quarantined, reason="550 mailbox full")
    with _at(START + timedelta(days=9)):
        _status(billing, "degraded_performance")

    # The open incident: several updates, components named out of page order.
    with _at(START + timedelta(days=10)):
        ongoing = services.incident_create(
            name="Search & CDN “degraded” 🚧",
            status=IncidentStatus.INVESTIGATING,
            body="Searches time out for some customers.",
            component_statuses={cdn: "degraded_performance", search: "partial_outage"},
            affected_components=[billing],
        )
    with _at(START + timedelta(days=10, minutes=15)):
        services.incident_post_update(
            incident=ongoing,
            status=IncidentStatus.IDENTIFIED,
            body='A cache node failed.\n\n* Search: <b>slow</b>\n* CDN: stale & "cold"',
            component_statuses={search: "major_outage"},
        )
    with _at(START + timedelta(days=10, minutes=45)):
        services.incident_post_update(
            incident=ongoing,
            status=IncidentStatus.IDENTIFIED,
            body="Still working on it. <script>alert('x')</script> ✓",
            deliver_notifications=False,
        )
    with _at(NOW - timedelta(hours=1)):
        services.maintenances_advance_due()
    with _at(NOW - timedelta(minutes=30)):
        component_services.component_update(
            component=dns, changes={"description": "Answers for acme.test"}
        )

    _fix_public_ids()
    PageSettings.forget_cached()
    rows = {
        Component: {"api": api, "web": web, "search": search, "cdn": cdn, "dns": dns},
        ComponentGroup: {"platform": platform, "edge": edge},
        Incident: {"backfilled": backfilled, "done": done, "resolved": resolved, "slow": slow},
        Subscriber: {"ada": ada, "bob": bob, "hook": hook, "carol": carol, "dave": quarantined},
    }
    rows[Component]["billing"] = billing
    rows[Incident].update(active=active, upcoming=upcoming, ongoing=ongoing)
    named = {
        name: model.objects.get(pk=row.pk).public_id
        for model, by_name in rows.items()
        for name, row in by_name.items()
    }
    named["empty"] = ComponentGroup.objects.get(name="Coming soon").public_id
    named["ongoing_update"] = IncidentUpdate.objects.filter(incident=ongoing).latest("pk").public_id
    return named


def _fix_public_ids() -> None:
    """Readable fixed ids in creation order (the dataset builds rows in a fixed order)."""
    for model, prefix in (
        (Component, "cmp"),
        (ComponentGroup, "grp"),
        (Incident, "inc"),
        (IncidentUpdate, "upd"),
        (Subscriber, "sub"),
    ):
        for n, pk in enumerate(model.objects.order_by("pk").values_list("pk", flat=True), 1):
            model.objects.filter(pk=pk).update(public_id=f"{prefix}{n:09d}")


def _reads(d: dict) -> list[tuple[str, str, dict]]:
    """(name, path below /api/v1, headers) of every read; `<key>` is the API key."""
    inc, cmp, grp, sub = "/incidents", "/components", "/component-groups", "/subscribers"
    paths = [
        "/pages",
        "/pages.json",
        f"/pages/{PAGE}",
        f"/pages/{PAGE}.json",
        "/pages/nosuchpage",
    ]
    paths += [
        BASE[len("/api/v1") :] + p
        for p in [
            cmp,
            f"{cmp}.json",
            f"{cmp}?per_page=3",
            f"{cmp}?per_page=3&page=2",
            f"{cmp}?per_page=3&page=4",
            f"{cmp}?per_page=500",
            f"{cmp}?page=0",
            f"{cmp}/{d['api']}",
            f"{cmp}/{d['search']}",
            f"{cmp}/{d['dns']}.json",
            f"{cmp}/{d['billing']}",
            f"{cmp}/{d['platform']}",
            f"{cmp}/nosuchthing",
            f"{cmp}/{d['api']}/uptime",
            f"{cmp}/{d['api']}/uptime?start=2026-03&end=2026-03",
            f"{cmp}/{d['billing']}/uptime?start=2026-03-01&end=2026-03-16",
            f"{cmp}/{d['api']}/uptime?start=2026-02-30",
            f"{cmp}/{d['api']}/sla",
            f"{cmp}/{d['api']}/sla?month=2026-03",
            f"{cmp}/{d['web']}/sla?month=2026-02",
            f"{cmp}/{d['api']}/sla?month=March",
            grp,
            f"{grp}.json",
            f"{grp}?per_page=2&page=2",
            f"{grp}/{d['platform']}",
            f"{grp}/{d['empty']}",
            f"{grp}/{d['api']}",
            f"{grp}/{d['platform']}/uptime?start=2026-03",
            f"{grp}/{d['platform']}/sla?month=2026-03",
            f"{grp}/{d['empty']}/sla?month=2026-03",
            inc,
            f"{inc}.json",
            f"{inc}?limit=2",
            f"{inc}?limit=2&page=2",
            f"{inc}?limit=2&page=9",
            f"{inc}?per_page=1",
            f"{inc}?q=API",
            f"{inc}?q=cache+node",
            f"{inc}?q=resolved",
            f"{inc}?q=index",
            f"{inc}?q=%F0%9F%9A%A7",
            f"{inc}?q=nothing+matches+this",
            f"{inc}?q=+",
            f"{inc}?page=0",
            f"{inc}?limit=abc",
            f"{inc}/unresolved",
            f"{inc}/unresolved.json?per_page=1&page=2",
            f"{inc}/scheduled",
            f"{inc}/scheduled?per_page=1&page=3",
            f"{inc}/upcoming",
            f"{inc}/active_maintenance",
            f"{inc}/{d['ongoing']}",
            f"{inc}/{d['ongoing']}.json",
            f"{inc}/{d['resolved']}",
            f"{inc}/{d['backfilled']}",
            f"{inc}/{d['slow']}",
            f"{inc}/{d['done']}",
            f"{inc}/{d['upcoming']}",
            f"{inc}/{d['active']}",
            f"{inc}/nosuchthing",
            f"{inc}/{d['resolved']}/postmortem",
            f"{inc}/{d['slow']}/postmortem",
            f"{inc}/{d['done']}/postmortem",
            sub,
            f"{sub}.json",
            f"{sub}?page=0",
            f"{sub}?page=1",
            f"{sub}?limit=2",
            f"{sub}?limit=2&page=1",
            f"{sub}?limit=2&page=5",
            f"{sub}?type=email",
            f"{sub}?type=webhook",
            f"{sub}?type=sms",
            f"{sub}?state=active",
            f"{sub}?state=unconfirmed",
            f"{sub}?state=quarantined",
            f"{sub}?state=all",
            f"{sub}?state=all&type=webhook",
            f"{sub}?state=gone",
            f"{sub}?q=example",
            f"{sub}?q=hooks&state=all",
            f"{sub}?q=BOB",
            f"{sub}?q=nobody",
            *[
                f"{sub}?state=all&sort_field={field}&sort_direction={direction}"
                for field in ("primary", "created_at", "quarantined_at", "relevance")
                for direction in ("asc", "desc")
            ],
            f"{sub}?sort_field=name",
            f"{sub}/count",
            f"{sub}/count?state=all",
            f"{sub}/count?type=webhook&state=unconfirmed",
            f"{sub}/histogram_by_state",
            f"{sub}/unsubscribed",
            f"{sub}/{d['ada']}",
            f"{sub}/{d['bob']}",
            f"{sub}/{d['hook']}.json",
            f"{sub}/{d['carol']}",
            f"{sub}/{d['dave']}",
            f"{sub}/nosuchthing",
            "/no-such-endpoint",
        ]
    ]
    oauth = {"Authorization": "OAuth <key>"}
    reads = [(f"GET {path}", path, oauth) for path in paths]
    components = f"{BASE[len('/api/v1') :]}{cmp}"
    reads += [
        (f"GET {components} [Bearer]", components, {"Authorization": "Bearer <key>"}),
        (f"GET {components} [bare key]", components, {"Authorization": "<key>"}),
        (f"GET {components}?api_key=<key>", f"{components}?api_key=<key>", {}),
        (f"GET {components} [no key]", components, {}),
        (f"GET {components} [wrong key]", components, {"Authorization": "OAuth bk_wrong"}),
    ]
    return reads


def _writes(d: dict) -> list[tuple[str, str, dict | None]]:
    """(method, path below the page, JSON body) of each write, in order."""
    inc = "/incidents"
    return [
        ("PATCH", f"/components/{d['api']}", {"component": {"status": "degraded_performance"}}),
        (
            "PATCH",
            f"/components/{d['billing']}",
            {"component": {"name": "Billing ✓", "description": None, "status": "operational"}},
        ),
        (
            "POST",
            inc,
            {
                "incident": {
                    "name": "Webhooks delayed",
                    "status": "investigating",
                    "body": "Deliveries are <b>late</b> & retried.",
                    "component_ids": [d["dns"], d["web"]],
                    "components": {d["cdn"]: "partial_outage", d["api"]: "major_outage"},
                    "impact_override": "minor",
                    "metadata": {"ci": {"run": 7, "tags": ["a", "b"]}},
                    "deliver_notifications": False,
                }
            },
        ),
        ("GET", inc + "/unresolved", None),
        (
            "PATCH",
            f"{inc}/{d['ongoing']}",
            {
                "incident": {
                    "status": "monitoring",
                    "body": "A fix is out; we are watching.",
                    "components": {d["search"]: "degraded_performance"},
                }
            },
        ),
        (
            "PATCH",
            f"{inc}/{d['ongoing']}/incident_updates/{d['ongoing_update']}",
            {"incident_update": {"body": "Corrected: still working on it. ✓"}},
        ),
        ("GET", f"{inc}/{d['ongoing']}", None),
        (
            "PUT",
            f"{inc}/{d['slow']}/postmortem",
            {"postmortem": {"body_draft": '# Slow dashboards\n\nA *cold* cache & "stale" keys.'}},
        ),
        ("PATCH", f"{inc}/{d['done']}", {"incident": {"name": "Database failover drill (done)"}}),
        (
            "POST",
            "/subscribers",
            {"subscriber": {"email": "erin@example.test", "component_ids": [d["billing"]]}},
        ),
        (
            "POST",
            "/subscribers",
            {"subscriber": {"endpoint": "https://hooks.example.test/erin"}},
        ),
        (
            "PATCH",
            f"/subscribers/{d['bob']}",
            {"component_ids": [d["search"], d["cdn"], d["api"], d["billing"]]},
        ),
        ("PATCH", f"/subscribers/{d['ada']}", {"subscriber": {"component_ids": [d["web"]]}}),
        ("GET", "/subscribers?state=all", None),
        ("DELETE", f"{inc}/{d['backfilled']}", None),
        ("GET", inc, None),
        ("GET", "/components", None),
        ("POST", inc, {"incident": {"name": ""}}),
        ("PATCH", f"{inc}/{d['ongoing']}", {"incident": {}}),
    ]


def _ask(client, key: str, method: str, path: str, headers: dict, body=None) -> dict:
    path = path.replace("<key>", key)
    kwargs = {"headers": {name: value.replace("<key>", key) for name, value in headers.items()}}
    if body is not None:
        kwargs.update(data=json.dumps(body), content_type="application/json")
    response = getattr(client, method.lower())("/api/v1" + path, **kwargs)
    return {
        "status": response.status_code,
        "content_type": response.get("Content-Type"),
        "body": response.content.decode(),
    }


def _check(name: str, answers: dict[str, dict]) -> None:
    """Record the answers (BEACON_RECORD_API_BYTES=1), or compare them with the record."""
    path = FIXTURES / f"{name}.json"
    if RECORDING:
        FIXTURES.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(answers, indent=1, ensure_ascii=False) + "\n")
        return
    assert path.exists(), f"No {path}: record it with BEACON_RECORD_API_BYTES=1."
    recorded = json.loads(path.read_text())
    problems = [
        f"Requests differ: missing {sorted(recorded.keys() - answers.keys())}, "
        f"new {sorted(answers.keys() - recorded.keys())}"
    ] * (recorded.keys() != answers.keys())
    for request, answer in answers.items():
        expected = recorded.get(request)
        if expected is None or expected == answer:
            continue
        problems.append(_difference(request, expected, answer))
    assert not problems, "\n\n".join(problems)


def _pretty(body: str) -> list[str]:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False).splitlines()
    except ValueError:
        return body.splitlines()


def _difference(request: str, expected: dict, actual: dict) -> str:
    head = [f"{request}:"]
    for field in ("status", "content_type"):
        if expected[field] != actual[field]:
            head.append(f"  {field}: recorded {expected[field]!r}, now {actual[field]!r}")
    if expected["body"] != actual["body"]:
        diff = list(
            difflib.unified_diff(
                _pretty(expected["body"]), _pretty(actual["body"]), "recorded", "now", lineterm=""
            )
        )
        head.append("\n".join(diff) or _first_difference(expected["body"], actual["body"]))
    return "\n".join(head)


def _first_difference(recorded: str, now: str) -> str:
    """Bodies equal once parsed differ in spacing, key order or escaping: where they part."""
    at = next(
        (n for n, (a, b) in enumerate(zip(recorded, now, strict=False)) if a != b),
        min(len(recorded), len(now)),
    )
    start = max(at - 60, 0)
    return (
        f"  the same JSON, other bytes from character {at}:\n"
        f"  recorded: …{recorded[start : at + 60]!r}\n  now:      …{now[start : at + 60]!r}"
    )


def test_reads_answer_as_recorded(client, dataset, api_key):
    with _at(NOW):
        answers = {
            name: _ask(client, api_key, "GET", path, headers)
            for name, path, headers in _reads(dataset)
        }
    _check("reads", answers)


def test_writes_answer_as_recorded(client, dataset, api_key, seeded_ids):
    answers = {}
    for n, (method, path, body) in enumerate(_writes(dataset), 1):
        name = f"{n:02d} {method} {path}"
        seeded_ids(name)
        with _at(NOW + timedelta(minutes=n)):
            answers[name] = _ask(
                client,
                api_key,
                method,
                BASE[len("/api/v1") :] + path,
                {"Authorization": "OAuth <key>"},
                body,
            )
        if body is not None:
            answers[name]["request"] = json.dumps(body, ensure_ascii=False)
    _check("writes", answers)

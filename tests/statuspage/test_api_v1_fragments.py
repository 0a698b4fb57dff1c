"""The management API's kept JSON (statuspage/api_v1/fragments.py) never shows less than the
database holds: every read after a write sees it, whichever way the write came, and the
assembled answer is byte for byte what rendering every object afresh gives."""

import json
import random
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from pydantic import TypeAdapter

from components import services as component_services
from components.models import Component, ComponentStatus
from components.selectors import component_tree
from incidents import services
from incidents.models import Incident, IncidentStatus
from incidents.notify import events, links, subscriptions
from incidents.notify.models import Subscriber
from incidents.statuspage_json import page_json_context
from statuspage.api_v1 import fragments, schemas
from statuspage.lib.kept import Kept
from statuspage.models import IncidentFragment, PageSettings, SubscriberFragment
from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import SubscriberFactory, open_incident, schedule_maintenance

pytestmark = pytest.mark.django_db

STATUSES = ["degraded_performance", "partial_outage", "major_outage", "operational"]


@pytest.fixture
def components(page):
    group = ComponentGroupFactory(name="Core")
    return [ComponentFactory(name=f"Service {n}", group=group if n % 2 else None) for n in range(6)]


def fresh_incidents(incidents) -> str:
    """What the API answered before fragments: every incident rendered now, validated."""
    page = PageSettings.load()
    tree = component_tree(include_internal=True)
    ctx = page_json_context(
        page=page,
        base_url=links.page_base_url(),
        updated_at=timezone.now(),
        components=tree.components,
        groups=tree.groups,
    )
    adapter = TypeAdapter(list[schemas.Incident])
    objects = [fragments.incident_object(incident, ctx) for incident in incidents]
    return json.dumps(adapter.dump_python(adapter.validate_python(objects)))


def fresh_subscribers(subscribers) -> str:
    page = PageSettings.load()
    everything = list(Component.objects.in_page_order().values_list("public_id", flat=True))
    objects = []
    for subscriber in subscribers:
        chosen = [c.public_id for c in subscriber.components.all()]
        ids = everything if subscriber.all_components else chosen
        objects.append(fragments.subscriber_object(subscriber, page, ids))
    adapter = TypeAdapter(list[schemas.Subscriber])
    return json.dumps(adapter.dump_python(adapter.validate_python(objects)))


def listed_incidents():
    from incidents.selectors import with_timeline

    ordered = Incident.objects.order_by("-created_at", "-id")
    return list(with_timeline(ordered, include_internal=True))


def test_every_read_after_an_api_write_sees_it(manage_api, components, settings):
    settings.BEACON_API_RATE_LIMIT_PER_MINUTE = 0
    incident = open_incident(component_statuses={components[1]: ComponentStatus.MAJOR_OUTAGE})
    rng = random.Random(20)
    for round_number in range(20):
        component = rng.choice(components)
        status = STATUSES[round_number % len(STATUSES)]
        patched = manage_api(
            "patch", f"/components/{component.public_id}", {"component": {"status": status}}
        )
        assert patched.status_code == 200
        assert patched.json()["status"] == status
        # Answered from the row the write held: the entry the catalogue renders afresh.
        assert patched.content == manage_api("get", f"/components/{component.public_id}").content

        listed = {c["id"]: c for c in manage_api("get", "/components").json()}
        assert listed[component.public_id]["status"] == status
        body = f"Round {round_number}: still looking."
        update = {"incident": {"status": "identified", "body": body}}
        assert manage_api("patch", f"/incidents/{incident.public_id}", update).status_code == 200

        [open_one] = manage_api("get", "/incidents/unresolved").json()
        assert open_one["incident_updates"][0]["body"] == body
        named = {c["id"]: c["status"] for c in open_one["components"]}
        current = {c.public_id: c.status for c in Component.objects.all()}
        assert named == {public_id: current[public_id] for public_id in named}
        answer = manage_api("get", "/incidents").content.decode()
        assert answer == fresh_incidents(listed_incidents())


def test_writes_no_save_tells_of_still_show(manage_api, components):
    """QuerySet.update() writes: reordering a group, a maintenance reminder, a quarantine."""
    maintenance = schedule_maintenance(starts_in=timedelta(minutes=30), scheduled_remind_prior=True)
    incident = open_incident(affected_components=[components[1], components[3]])
    subscriber = SubscriberFactory(email="reader@example.test", components=[components[2]])
    manage_api("get", "/incidents")
    manage_api("get", "/subscribers")

    group = components[1].group
    component_services.component_group_update(
        group=group, components=[components[5], components[3], components[1]]
    )
    assert events.maintenance_reminders_due(now=maintenance.scheduled_for - timedelta(minutes=5))
    subscriptions.subscriber_quarantine(subscriber=subscriber, reason="bounced")

    listed = {c["id"]: c for c in manage_api("get", "/components").json()}
    assert [listed[c.public_id]["position"] for c in (components[5], components[3])] == [1, 2]
    assert manage_api("get", "/incidents").content.decode() == fresh_incidents(listed_incidents())
    [reader] = manage_api("get", "/subscribers", state="quarantined").json()
    assert reader["quarantined_at"] is not None
    shown = {i["id"]: i for i in manage_api("get", "/incidents").json()}
    assert incident.public_id in shown
    assert shown[maintenance.public_id]["scheduled_reminded_at"] is not None


def test_renamed_and_deleted_components_show_in_incidents_at_once(manage_api, components):
    open_incident(
        component_statuses={components[1]: ComponentStatus.PARTIAL_OUTAGE},
        affected_components=[components[2]],
    )
    manage_api("get", "/incidents")
    component_services.component_update(component=components[1], changes={"name": "Renamed"})
    [incident] = manage_api("get", "/incidents").json()
    [change] = incident["incident_updates"][0]["affected_components"]
    assert change["name"] == "Core - Renamed"
    assert incident == json.loads(fresh_incidents(listed_incidents()))[0]

    component_services.component_delete(component=components[2])
    answer = manage_api("get", "/incidents").content.decode()
    assert components[2].public_id not in answer
    assert answer == fresh_incidents(listed_incidents())


def test_the_page_zone_and_address_are_part_of_every_fragment(manage_api, components):
    open_incident(component_statuses={components[0]: ComponentStatus.MAJOR_OUTAGE})
    SubscriberFactory(email="reader@example.test")
    before = manage_api("get", "/incidents").json()[0]["created_at"]
    page = PageSettings.objects.get()
    page.time_zone = "Asia/Tokyo"
    page.url = "https://status.example.test"
    page.save()
    [incident] = manage_api("get", "/incidents").json()
    assert incident["created_at"] != before and incident["created_at"].endswith("+09:00")
    assert incident["shortlink"].startswith("https://status.example.test/")
    assert manage_api("get", "/subscribers").content.decode() == fresh_subscribers(
        Subscriber.objects.order_by("email", "id")
    )


def test_subscribers_answer_as_rendered_afresh_after_every_change(manage_api, components):
    SubscriberFactory(email="all@example.test")
    chosen = SubscriberFactory(email="some@example.test", components=[components[4], components[0]])
    manage_api("get", "/subscribers")
    ComponentFactory(name="Brand new")  # "all" now names it too
    component_services.component_update(component=components[4], changes={"name": "A first"})
    subscriptions.subscription_set_components(subscriber=chosen, component_ids=[components[2].pk])
    answer = manage_api("get", "/subscribers").content.decode()
    assert answer == fresh_subscribers(Subscriber.objects.order_by("email"))
    assert json.loads(answer)[1]["components"] == [components[2].public_id]


def test_a_render_from_data_older_than_a_write_is_never_kept(page, components):
    """The reader's store is conditional on the version it read before its data."""
    incident = open_incident(component_statuses={components[0]: ComponentStatus.MAJOR_OUTAGE})
    fragments.incident_texts(Incident.objects.filter(pk=incident.pk), page)
    row = IncidentFragment.objects.get(incident_id=incident.pk)
    assert row.rendered_version == row.version

    # A write lands after a reader read version v, before it stores its (older) render.
    services.incident_edit(incident=incident, name="Renamed", impact_override="")
    read, stale = {incident.pk: row.version}, {incident.pk: "stale"}
    fragments._store(IncidentFragment, "incident_id", read, stale, fragments.page_stamp(page))
    kept = IncidentFragment.objects.get(incident_id=incident.pk)
    assert kept.body != "stale" and kept.rendered_version != kept.version
    [text] = fragments.incident_texts(Incident.objects.filter(pk=incident.pk), page)
    assert json.loads(text)["name"] == "Renamed"


@pytest.mark.parametrize(
    "hostile",
    [
        "\x1eC1,2\x1e",
        "\x1eN1\x1e",
        '"\\u001eA\\u001e"',
        "\u001eS1\u001e and \x1e",
        "[\x1e] ",
    ],
)
def test_text_that_looks_like_a_slot_is_only_text(manage_api, components, hostile):
    """Slots are marked with a random nonce per render: no stored text can forge one."""
    incident = open_incident(component_statuses={components[0]: ComponentStatus.MAJOR_OUTAGE})
    # Below the API's own checks, which refuse control characters: as an old row could hold.
    Incident.objects.filter(pk=incident.pk).update(name=hostile)
    fragments.mark_incidents([incident.pk])
    Subscriber.objects.filter(pk=SubscriberFactory(email="x@example.test").pk).update(email=hostile)
    fragments.mark_subscribers(Subscriber.objects.values_list("pk", flat=True))
    [listed] = manage_api("get", "/incidents").json()
    assert listed["name"] == hostile
    [subscriber] = manage_api("get", "/subscribers", q="").json()
    assert subscriber["email"] == hostile


def test_deleted_objects_leave_no_fragment(manage_api, components):
    incident = open_incident(component_statuses={components[0]: ComponentStatus.MAJOR_OUTAGE})
    subscriber = SubscriberFactory(email="gone@example.test")
    manage_api("get", "/incidents")
    manage_api("get", "/subscribers")
    assert manage_api("delete", f"/incidents/{incident.public_id}").status_code == 200
    assert manage_api("delete", f"/subscribers/{subscriber.public_id}").status_code == 200
    assert not IncidentFragment.objects.exists()
    assert not SubscriberFragment.objects.exists()
    assert manage_api("get", "/incidents").json() == []


def test_an_incident_resolved_by_the_service_shows_resolved(manage_api, components):
    incident = open_incident(component_statuses={components[0]: ComponentStatus.MAJOR_OUTAGE})
    assert manage_api("get", "/incidents/unresolved").json()
    services.incident_post_update(
        incident=incident,
        status=IncidentStatus.RESOLVED,
        body="Fixed.",
        component_statuses={components[0]: ComponentStatus.OPERATIONAL},
    )
    assert manage_api("get", "/incidents/unresolved").json() == []
    [shown] = manage_api("get", "/incidents").json()
    assert shown["status"] == "resolved"
    assert shown["components"][0]["status"] == "operational"
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM statuspage_incidentfragment")
        assert cursor.fetchone()[0] == 1


def test_a_render_read_from_the_replica_is_not_kept(page, components):
    """Inside a replica scope the rows may be older than the version read: render, keep
    nothing; the primary's readers keep it."""
    from statuspage.lib.replica import reading_from_replica

    incident = open_incident(component_statuses={components[0]: ComponentStatus.MAJOR_OUTAGE})
    with reading_from_replica():
        [text] = fragments.incident_texts(Incident.objects.filter(pk=incident.pk), page)
    assert json.loads(text)["id"] == incident.public_id
    row = IncidentFragment.objects.get(incident_id=incident.pk)
    assert row.rendered_version != row.version
    fragments.incident_texts(Incident.objects.filter(pk=incident.pk), page)
    row.refresh_from_db()
    assert row.rendered_version == row.version


def test_a_written_component_answers_its_catalogue_entry(page):
    """A write answers with one component rendered alone: the same bytes, position included,
    as its entry in the catalogue, in any layout (ties, empty groups, groups between)."""
    rng = random.Random(20)
    groups = [
        ComponentGroupFactory(name=f"Group {n}", position=rng.randint(0, 3)) for n in range(4)
    ]
    for _ in range(14):
        ComponentFactory(
            name=f"Service {rng.randint(0, 5)}",  # equal names and positions: ties by pk
            position=rng.randint(0, 3),
            group=rng.choice([None, None, *groups[:3]]),  # the last group stays empty
        )
    kept = fragments.catalogue(page)
    for component in Component.objects.all():
        alone = fragments.component_entry(page, component.pk)
        assert alone == kept.entry(component.public_id, group=False)
    assert fragments.component_entry(page, 10**9) is None


def test_an_update_kept_in_the_process_follows_every_field_of_its_rows(manage_api, components):
    """Each process keeps update texts under the rows they were made from: a row changed by a
    plain UPDATE (no save, updated_at as it was) is rendered again, never the old text."""
    from incidents.models import AffectedComponent, IncidentUpdate

    incident = open_incident(component_statuses={components[1]: ComponentStatus.MAJOR_OUTAGE})
    services.incident_post_update(
        incident=incident, status=IncidentStatus.IDENTIFIED, body="Found it."
    )
    assert manage_api("get", "/incidents").content.decode() == fresh_incidents(listed_incidents())
    first = incident.updates.order_by("id").first()
    IncidentUpdate.objects.filter(pk=first.pk).update(body="We are looking (edited by SQL).")
    AffectedComponent.objects.filter(update=first).update(new_status="partial_outage")
    fragments.mark_incidents([incident.pk])

    answer = manage_api("get", "/incidents").content.decode()
    assert answer == fresh_incidents(listed_incidents())
    [shown] = json.loads(answer)
    oldest = shown["incident_updates"][-1]
    assert oldest["body"] == "We are looking (edited by SQL)."
    assert oldest["affected_components"][0]["new_status"] == "partial_outage"


@pytest.mark.django_db(transaction=True)  # the incident made in a transaction of its own
def test_a_transaction_marks_a_fragment_once_unless_a_savepoint_took_the_mark_back(page):
    from django.db import transaction

    incident = open_incident()

    def version() -> int:
        return IncidentFragment.objects.get(incident=incident).version

    class RolledBack(Exception):
        pass

    with transaction.atomic():
        before = version()
        with pytest.raises(RolledBack), transaction.atomic():
            fragments.mark_incidents([incident.pk])
            assert version() == before + 1
            raise RolledBack
        assert version() == before  # the savepoint took the mark back …
        fragments.mark_incidents([incident.pk])  # … so it is made again
        assert version() == before + 1
        fragments.mark_incidents([incident.pk])  # and then not twice
        services.incident_post_update(incident=incident, status="identified", body="Found it.")
        assert version() == before + 1

        # A render kept in between is current as of those marks: the next write marks again.
        listed = Incident.objects.filter(pk=incident.pk)
        assert "Found it." in fragments.incident_texts(listed, page)[0]
        services.incident_post_update(incident=incident, status="monitoring", body="Fixed.")
        assert version() == before + 2
        assert "Fixed." in fragments.incident_texts(listed, page)[0]
        fragments.catalogue(page)  # the catalogue kept, then a component written
        component = Component.objects.create(name="Late")
        assert component.public_id in fragments.catalogue(page).entry_ids


@pytest.mark.django_db(transaction=True)
def test_a_transaction_of_thousands_of_writes_marks_without_looking_through_them_all(page):
    """Past MARKS_LOOKED_THROUGH hooks queued (an import), a mark is made again, not looked
    for: each write costs a statement, never a scan of everything written before it."""
    from django.db import transaction

    incident = open_incident()
    with transaction.atomic():
        for _ in range(fragments.MARKS_LOOKED_THROUGH + 1):
            transaction.on_commit(lambda: None)
        before = IncidentFragment.objects.get(incident=incident).version
        fragments.mark_incidents([incident.pk])
        fragments.mark_incidents([incident.pk])
        assert IncidentFragment.objects.get(incident=incident).version == before + 2


@pytest.fixture
def committed_api(client, page):
    """The management API with a superuser's key, for tests whose writes commit (the flush
    between them takes the migrations' groups away)."""
    from statuspage.api_v1.keys import api_key_create
    from tests.incidents.factories import StaffFactory

    key = api_key_create(owner=StaffFactory(is_superuser=True), name="CI")[1]
    base = f"/api/v1/pages/{page.public_id}"

    def call(method, path, body=None):
        data = {} if body is None else {"data": json.dumps(body)}
        return getattr(client, method)(
            base + path,
            HTTP_AUTHORIZATION=f"OAuth {key}",
            content_type="application/json",
            **data,
        )

    return call


WRITTEN = [
    {"status": "identified", "body": 'Found it: "\\u001eC1\\u001e" looks like a slot.'},
    {"status": "monitoring", "body": "Fixed.", "deliver_notifications": False},
    {"body": "Still watching."},  # no status: the incident keeps its own
    {"status": "resolved", "body": "Resolved."},
    {"status": "investigating", "body": "It is back (reopened)."},
]


@pytest.mark.django_db(transaction=True)  # each write commits, as in production
@pytest.mark.parametrize("naming_components", [False, True])
def test_an_update_posted_is_answered_from_what_its_write_left_and_kept(
    committed_api, page, naming_components
):
    """The answer to an update posted is rendered in the write's transaction from the row it
    holds (or, naming components, read after it): byte for byte a fresh render, and kept as
    current, so the next read renders nothing."""
    component = ComponentFactory(name="API")
    named = {component: ComponentStatus.MAJOR_OUTAGE} if naming_components else {}
    incident = open_incident(name="Errors", component_statuses=named)
    path = f"/incidents/{incident.public_id}"
    for fields in WRITTEN:
        answer = committed_api("patch", path, {"incident": fields})
        assert answer.status_code == 200, answer.content
        kept = IncidentFragment.objects.get(incident=incident)
        assert kept.rendered_version == kept.version  # kept by the write, current
        served = committed_api("get", path).content
        assert served == answer.content
        IncidentFragment.objects.filter(incident=incident).update(stamp="")  # render afresh
        assert committed_api("get", path).content == answer.content
        [fresh] = json.loads(fresh_incidents([listed_one(incident)]))
        assert json.loads(answer.content) == fresh
    assert json.loads(answer.content)["status"] == "investigating"


def listed_one(incident):
    return next(i for i in listed_incidents() if i.pk == incident.pk)


@pytest.mark.django_db(transaction=True)
def test_a_maintenance_moved_through_its_statuses_answers_as_rendered_afresh(committed_api):
    maintenance = schedule_maintenance(starts_in=timedelta(minutes=5))
    path = f"/incidents/{maintenance.public_id}"
    for status in ("in_progress", "verifying", "completed"):
        answer = committed_api("patch", path, {"incident": {"status": status, "body": status}})
        assert answer.status_code == 200, answer.content
        [fresh] = json.loads(fresh_incidents([listed_one(maintenance)]))
        assert json.loads(answer.content) == fresh
        assert committed_api("get", path).content == answer.content


@pytest.mark.django_db(transaction=True)
def test_an_update_posted_after_the_timeline_changed_reads_it_again(committed_api, monkeypatch):
    """A post renders only itself before the timeline this process kept while nothing else
    moved the incident's version; an edit of an older update (through the API, or by SQL and
    marked), or an older update moved ahead of now, makes it read the whole timeline again:
    every answer is byte for byte a fresh render."""
    from incidents.models import IncidentUpdate

    incident = open_incident(name="Errors")
    path = f"/incidents/{incident.public_id}"
    reads = []
    timelines = fragments._timelines

    def counted(*args, **kwargs):
        reads.append(kwargs.get("only_update") is None)
        return timelines(*args, **kwargs)

    monkeypatch.setattr(fragments, "_timelines", counted)

    def post(body: str) -> dict:
        reads.clear()
        answer = committed_api("patch", path, {"incident": {"status": "identified", "body": body}})
        assert answer.status_code == 200, answer.content
        [fresh] = json.loads(fresh_incidents([listed_one(incident)]))
        assert json.loads(answer.content) == fresh
        assert committed_api("get", path).content == answer.content
        return json.loads(answer.content)

    post("First.")
    assert reads == [True]  # the whole timeline, kept for the next post
    post("Second.")
    assert reads == [False]  # only the update posted
    first = incident.updates.order_by("id").first()

    edited = committed_api(
        "patch", f"{path}/incident_updates/{first.public_id}", {"incident_update": {"body": "Re."}}
    )
    assert edited.status_code == 200
    assert post("Third.")["incident_updates"][-1]["body"] == "Re."
    assert reads == [False]  # the edit's own answer read the timeline again, and kept it

    IncidentUpdate.objects.filter(pk=first.pk).update(body="Edited by SQL.")
    fragments.mark_incidents([incident.pk])
    assert post("Fourth.")["incident_updates"][-1]["body"] == "Edited by SQL."
    assert reads == [True]
    post("Fifth.")
    assert reads == [False]

    later = timezone.now() + timedelta(hours=1)
    IncidentUpdate.objects.filter(pk=first.pk).update(display_at=later)
    fragments.mark_incidents([incident.pk])
    post("Sixth.")  # read again: the edit moved the version
    shown = post("Seventh.")  # kept, but the update posted is not the newest: read again
    assert reads == [True]
    assert [u["body"] for u in shown["incident_updates"]][:2] == ["Edited by SQL.", "Seventh."]


@pytest.mark.django_db(transaction=True)
def test_a_timeline_read_in_a_transaction_rolled_back_is_not_kept(page):
    from django.db import transaction

    incident = open_incident(name="Errors")
    fragments.timelines_kept.put(incident.pk, fragments._Timeline("", "", (), (None, 0)))
    kept = fragments.timelines_kept.get(incident.pk)

    class RolledBack(Exception):
        pass

    renders = []
    render = fragments._render_incidents

    def counted(pks, *args):
        renders.append(set(pks))
        return render(pks, *args)

    with pytest.raises(RolledBack), transaction.atomic():
        posted = services.incident_post_update(incident=incident, status="identified", body="X")
        assert fragments.written_incident_text(incident, page, posted) is not None
        # A reader in the same transaction renders it again (its kept text made stale) …
        IncidentFragment.objects.filter(incident=incident).update(stamp="")
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(fragments, "_render_incidents", counted)
            assert fragments.incident_texts(Incident.objects.filter(pk=incident.pk), page)
        assert renders == [{incident.pk}]
        raise RolledBack
    # … and neither the writer's timeline nor the reader's is kept: their rows never were.
    assert fragments.timelines_kept.get(incident.pk) is kept


@pytest.mark.django_db(transaction=True)
def test_a_timeline_kept_before_a_restore_is_not_used_after_it(committed_api):
    """Versions repeat when the database goes back in time (a backup restored, a failover to
    a standby that was behind): a timeline this process kept of the row's earlier life must
    not come back. The row names the render it holds; the kept timeline, the one it made."""
    from incidents.models import IncidentUpdate

    incident = open_incident(name="Errors")
    path = f"/incidents/{incident.public_id}"

    def post(body: str) -> list[str]:
        answer = committed_api("patch", path, {"incident": {"status": "identified", "body": body}})
        assert answer.status_code == 200, answer.content
        [fresh] = json.loads(fresh_incidents([listed_one(incident)]))
        assert json.loads(answer.content) == fresh
        return [u["body"] for u in fresh["incident_updates"]]

    post("A.")
    restored = IncidentFragment.objects.values().get(incident=incident)  # after A
    post("B.")
    # Restored to the state after A: B is gone, the fragment's row as it was then.
    IncidentUpdate.objects.filter(incident=incident, body="B.").delete()
    IncidentFragment.objects.filter(incident=incident).update(**restored)
    Incident.objects.filter(pk=incident.pk).update(status="identified")
    # Another process posts C (this one's kept timeline is not touched) …
    kept = fragments.timelines_kept.get(incident.pk)
    assert post("C.")[:2] == ["C.", "A."]
    fragments.timelines_kept.put(incident.pk, kept)
    # … then this one posts D: its timeline with B must not come back.
    assert post("D.")[:3] == ["D.", "C.", "A."]


def test_the_timelines_kept_are_bounded(monkeypatch):
    monkeypatch.setattr(fragments, "TIMELINES_KEPT", 3)
    kept = Kept(
        lambda: fragments.TIMELINES_KEPT,
        lambda: fragments.TIMELINES_KEPT_CHARS,
        lambda: fragments.TIMELINES_KEPT_CHARS // 8,
        lambda timeline: sum(map(len, timeline.texts)),
    )
    for pk in range(5):
        kept.put(pk, fragments._Timeline("", "", ("x" * 10,), (None, pk)))
    assert [pk for pk in range(5) if kept.get(pk)] == [2, 3, 4]
    monkeypatch.setattr(fragments, "TIMELINES_KEPT_CHARS", 80)
    kept.put(9, fragments._Timeline("", "", ("y" * 11,), (None, 9)))  # over an eighth: not kept
    assert kept.get(9) is None
    kept.put(8, fragments._Timeline("", "", ("y" * 10,), (None, 8)))
    assert kept.get(8) is not None

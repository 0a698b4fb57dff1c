"""What one write costs: the queries of the management API's two common writes (a
component's status, an incident update) at the service level, and one publication per commit
however many rows and announcements the transaction made."""

import pytest
from django.db import connection, transaction

from components.models import ComponentStatus, StatusChangeCause
from components.status import component_status_state
from incidents.models import IncidentStatus
from incidents.services import incident_post_update
from statuspage.lib.signals import announce_public_change_on_commit, public_output_changed
from statuspage.public import public_cache
from tests.components.factories import ComponentFactory
from tests.incidents.factories import StaffFactory, open_incident

PUBLISHED = 'UPDATE "statuspage_publicchange"'


class RolledBack(Exception):
    pass


@pytest.fixture
def announcements():
    """How many times the public change was announced (each one publishes)."""
    heard: list[object] = []

    def hear(sender, **kwargs):
        heard.append(sender)

    public_output_changed.connect(hear, dispatch_uid="test-write-costs")
    yield heard
    public_output_changed.disconnect(dispatch_uid="test-write-costs")


def published(captured) -> int:
    return sum(PUBLISHED in query["sql"] for query in captured.captured_queries)


def test_a_component_status_change_is_a_few_queries_and_one_publication(
    page, announcements, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    component = ComponentFactory()
    actor = StaffFactory()
    for status in (ComponentStatus.MAJOR_OUTAGE, ComponentStatus.OPERATIONAL):
        before = public_cache.generation()
        announcements.clear()
        # One lock (the arbiter's, which the recorder reuses), the day's uptime (and its row,
        # on a new day), the change, the component, the API's catalogue marked stale, whether
        # webhooks listen, the savepoint; then, once committed, the generation noted in the
        # database (in a savepoint in a test).
        with (
            django_assert_max_num_queries(12) as captured,
            django_capture_on_commit_callbacks(execute=True),
        ):
            change = component_status_state(
                component=component, source=StatusChangeCause.API, status=status, actor=actor
            )
        assert change is not None and change.to_status == status
        assert published(captured) == 1
        assert len(announcements) == 1
        assert public_cache.generation() != before


def test_stating_the_status_a_component_has_reads_one_row_and_publishes_nothing(
    page, announcements, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    component = ComponentFactory()
    with (
        django_assert_max_num_queries(3),  # the savepoint, the lock, the release
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        change = component_status_state(
            component=component,
            source=StatusChangeCause.API,
            status=ComponentStatus.OPERATIONAL,
        )
    assert change is None
    assert callbacks == [] and announcements == []


def test_an_incident_update_is_a_few_queries_and_one_publication(
    page, announcements, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    component = ComponentFactory()
    incident = open_incident(
        component_statuses={component: ComponentStatus.MAJOR_OUTAGE}, deliver_notifications=False
    )
    for n, status in enumerate([IncidentStatus.IDENTIFIED, IncidentStatus.MONITORING]):
        announcements.clear()
        # The lock, whether it has updates, the update, the impact, the incident, the API's
        # fragment of the incident marked stale (by the update and by the incident), the
        # savepoint; then the generation noted in the database (in a savepoint in a test).
        with (
            django_assert_max_num_queries(12) as captured,
            django_capture_on_commit_callbacks(execute=True),
        ):
            incident_post_update(
                incident=incident,
                status=status,
                body=f"Update {n}.",
                deliver_notifications=False,
            )
        assert published(captured) == 1
        assert len(announcements) == 1
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.MONITORING
    assert incident.updates.count() == 3


def test_resolving_an_incident_with_components_publishes_once(
    page, announcements, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    components = ComponentFactory.create_batch(3)
    incident = open_incident(
        component_statuses=dict.fromkeys(components, ComponentStatus.PARTIAL_OUTAGE),
        deliver_notifications=False,
    )
    announcements.clear()
    with (
        django_assert_max_num_queries(57) as captured,  # fifteen a component, not more
        django_capture_on_commit_callbacks(execute=True),
    ):
        incident_post_update(
            incident=incident, status=IncidentStatus.RESOLVED, deliver_notifications=False
        )
    assert published(captured) == 1
    assert len(announcements) == 1
    for component in components:
        component.refresh_from_db()
        assert component.status == ComponentStatus.OPERATIONAL


def test_a_change_announced_again_in_a_rolled_back_savepoint_is_still_published_once(
    db, announcements, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        announce_public_change_on_commit()
        with pytest.raises(RolledBack), transaction.atomic():
            announce_public_change_on_commit()
            raise RolledBack
        announce_public_change_on_commit()
    assert len(announcements) == 1


def test_a_change_announced_only_in_a_rolled_back_savepoint_is_not_published(
    db, announcements, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RolledBack),
        transaction.atomic(),
    ):
        announce_public_change_on_commit()
        raise RolledBack
    assert announcements == []


def test_a_change_announced_before_a_rolled_back_savepoint_that_announced_is_published(
    db, announcements, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            announce_public_change_on_commit()
        with pytest.raises(RolledBack), transaction.atomic():
            announce_public_change_on_commit()
            raise RolledBack
    assert len(announcements) == 1


def test_each_commit_publishes_its_own_change(
    db, announcements, django_capture_on_commit_callbacks
):
    # Two commits in a row (captured one after the other in the test's transaction).
    for expected in (1, 2):
        with django_capture_on_commit_callbacks(execute=True):
            announce_public_change_on_commit()
            announce_public_change_on_commit()
        assert len(announcements) == expected


@pytest.mark.django_db(transaction=True)
def test_a_real_commit_of_many_public_rows_publishes_once(page, announcements):
    with transaction.atomic():
        components = ComponentFactory.create_batch(3)
        for component in components:
            component.name += " (renamed)"
            component.save()
        announce_public_change_on_commit()
        assert connection.run_on_commit  # all still waiting for the commit
        assert announcements == []
    assert len(announcements) == 1

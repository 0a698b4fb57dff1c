"""The management API's lists cost the same few queries for 3 rows or 30."""

import pytest

from statuspage.api_v1 import keys
from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import SubscriberFactory, open_incident

pytestmark = pytest.mark.django_db

# A first read renders the objects nobody has read since they changed (the same number of
# queries for 3 of them or 30) and keeps their JSON (statuspage/api_v1/fragments.py) ...
BUDGET = {
    "/incidents": 14,
    "/incidents/unresolved": 14,
    "/components": 7,
    "/component-groups": 7,
    "/subscribers": 10,
}
# ... and the reads after it assemble what was kept: the rows and their fragments in one
# query, the components' catalogue in another (the key is checked from the cache).
KEPT_BUDGET = {**dict.fromkeys(BUDGET, 2), "/components": 1, "/component-groups": 1}


@pytest.fixture(params=[3, 30], ids=["3 rows", "30 rows"])
def filled_page(request, manage_api, monkeypatch):
    # The key's record outlives the test, so that whether it expired (after a second) does
    # not change what is counted: authentication's own queries are tested with it.
    monkeypatch.setattr(keys, "AUTH_CACHE_SECONDS", 600)
    size = request.param
    group = ComponentGroupFactory(name="Core")
    components = [
        ComponentFactory(name=f"Service {i}", group=group if i % 2 else None) for i in range(size)
    ]
    for i, component in enumerate(components):
        incident = open_incident(
            name=f"Incident {i}",
            component_statuses={component: "major_outage"},
            affected_components=[components[(i + 1) % size]],
        )
        body = {"incident": {"status": "identified", "body": "Found it."}}
        manage_api("patch", f"/incidents/{incident.public_id}", body)
        SubscriberFactory(email=f"reader{i}@example.test", components=[component])


@pytest.mark.parametrize("path", BUDGET)
def test_lists_do_not_query_per_row(manage_api, filled_page, path, django_assert_max_num_queries):
    with django_assert_max_num_queries(BUDGET[path]):
        response = manage_api("get", path)

    assert response.status_code == 200
    assert response.json()

    with django_assert_max_num_queries(KEPT_BUDGET[path]):
        again = manage_api("get", path)
    assert again.content == response.content


# The two writes clients make most, end to end (the key checked from the cache): what the
# write reads and writes, the public generation noted, the answer rendered (one component's
# entry; the incident with only its new update rendered, the older ones' texts kept in the
# process) and kept, and the audit row. Inside the test's transaction, which adds its
# savepoints, and in which the rows were marked already (a transaction marks a fragment once).
# An update to an incident naming no component is answered from the row the write holds,
# rendered in its transaction (no read of the incident after it, nor of the catalogue).
WRITE_BUDGET = {"component status": 13, "incident update": 22, "update, no component": 16}


@pytest.mark.parametrize("write", WRITE_BUDGET)
def test_the_common_writes_cost_a_bounded_number_of_queries(
    manage_api, monkeypatch, write, django_assert_max_num_queries
):
    monkeypatch.setattr(keys, "AUTH_CACHE_SECONDS", 600)
    components = [ComponentFactory(name=f"Service {i}") for i in range(10)]
    named = {} if write == "update, no component" else {components[0]: "major_outage"}
    incident = open_incident(name="Incident", component_statuses=named)
    for n in range(20):  # a long timeline costs no query more
        body = {"incident": {"status": "identified", "body": f"Update {n}."}}
        assert manage_api("patch", f"/incidents/{incident.public_id}", body).status_code == 200
    if write == "component status":
        path, body = (
            f"/components/{components[5].public_id}",
            {"component": {"status": "major_outage"}},
        )
    else:
        path, body = (
            f"/incidents/{incident.public_id}",
            {"incident": {"status": "monitoring", "body": "Fixed."}},
        )
    with django_assert_max_num_queries(WRITE_BUDGET[write]):
        assert manage_api("patch", path, body).status_code == 200

"""The management API's lists cost the same few queries for 3 rows or 30."""

import pytest

from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import SubscriberFactory, open_incident

pytestmark = pytest.mark.django_db

# Authentication and the rate limit included (the key's lookup and its last-used time).
BUDGET = {
    "/incidents": 9,
    "/incidents/unresolved": 9,
    "/components": 5,
    "/component-groups": 5,
    "/subscribers": 6,
}


@pytest.fixture(params=[3, 30], ids=["3 rows", "30 rows"])
def filled_page(request, manage_api):
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

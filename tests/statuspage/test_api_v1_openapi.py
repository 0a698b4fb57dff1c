"""Management API v1: the OpenAPI document describes every response, and routes keep to it."""

from typing import get_args

import pytest
from pydantic import ValidationError

from components.models import ComponentStatus
from incidents.models import Impact, IncidentStatus
from incidents.notify.models import Channel
from statuspage.api_v1 import pages, schemas
from statuspage.api_v1 import subscribers as api_subscribers

pytestmark = pytest.mark.django_db

ERROR_STATUSES = ["400", "401", "403", "404", "422", "429"]
# Statuspage answers resending one subscriber's confirmation with an empty 201.
EMPTY_CREATED = {
    ("post", "/api/v1/pages/{page_id}/subscribers/{subscriber_id}/resend_confirmation")
}


@pytest.fixture
def document(client, page):
    return client.get("/api/v1/openapi.json").json()


def operations(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def json_schema(response):
    return response.get("content", {}).get("application/json", {}).get("schema")


def resolve(document, schema):
    prefix = "#/components/schemas/"
    return document["components"]["schemas"][schema["$ref"].removeprefix(prefix)]


def test_every_success_with_a_body_declares_its_json_schema(document):
    undeclared = [
        f"{method.upper()} {path} {status}"
        for method, path, operation in operations(document)
        for status, response in operation["responses"].items()
        if status.startswith("2")
        and status not in ("202", "204")
        and (method, path) not in EMPTY_CREATED
        and json_schema(response) is None
    ]
    assert undeclared == []


def test_every_operation_declares_a_success_and_the_error_body(document):
    for method, path, operation in operations(document):
        responses = operation["responses"]
        assert any(status.startswith("2") for status in responses), f"{method} {path}"
        for status in ERROR_STATUSES:
            schema = json_schema(responses[status])
            assert schema == {"$ref": "#/components/schemas/Error"}, f"{method} {path} {status}"
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "message"]


def test_an_incident_lists_its_updates_as_objects(document):
    incident = document["components"]["schemas"]["Incident"]
    updates = incident["properties"]["incident_updates"]
    assert "incident_updates" in incident["required"]
    assert updates["type"] == "array"
    update = resolve(document, updates["items"])
    assert update["type"] == "object"
    assert {"id", "status", "body", "affected_components"} <= set(update["required"])
    assert incident["additionalProperties"] is False


def test_the_declared_enums_are_the_models_choices():
    assert set(get_args(schemas.ComponentStatus)) == set(ComponentStatus.values)
    assert set(get_args(schemas.IncidentStatus)) == set(IncidentStatus.values)
    assert set(get_args(schemas.Impact)) == set(Impact.values)
    # Browser push is not one of Statuspage's modes: the API leaves those subscribers out.
    assert set(get_args(schemas.SubscriberMode)) == set(api_subscribers.API_CHANNELS)
    assert set(api_subscribers.API_CHANNELS) == set(Channel.values) - {Channel.PUSH}


def test_a_key_the_schema_lacks_fails_instead_of_vanishing(manage_api, monkeypatch):
    page_object = pages.page_object
    monkeypatch.setattr(pages, "page_object", lambda page: {**page_object(page), "extra": 1})
    with pytest.raises(ValidationError, match="extra"):
        manage_api("get", "")

"""The journey's parts: a live server (pytest-django), a real Celery worker, a real SMTP
server (aiosmtpd) and Debian's Chromium (the `browser` fixture in tests/conftest.py)."""

import pytest
from celery.contrib.testing.worker import start_worker

from components.models import ComponentStatus
from incidents.models import IncidentStatus
from incidents.services import incident_post_update, incident_resolve
from statuspage.celery import app
from tests.browser import steps
from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import open_incident, schedule_maintenance
from tests.incidents.notify.conftest import smtp_server  # noqa: F401 (a fixture, reused)


@pytest.fixture
def reports():
    return steps.Reports()


@pytest.fixture(scope="session")
def axe():
    return steps.axe_source()


@pytest.fixture
def worker():
    """Sends what the pages queue (confirmations, notifications), as in production."""
    with app.connection_for_write() as connection:  # nothing another test left behind
        for queue in ("default", "notify"):
            connection.default_channel.queue_purge(queue)
    with start_worker(
        app,
        pool="solo",
        perform_ping_check=False,
        shutdown_timeout=10,
        queues=["default", "notify"],
    ) as running:
        yield running


@pytest.fixture
def status_page(page, live_server):
    """A page with a group of components, an active incident, maintenance and a past incident;
    the links in its emails lead to the live server."""
    page.url = live_server.url
    page.save()
    platform = ComponentGroupFactory(name="Platform")
    ComponentFactory(name="API", group=platform, description="The public REST API.")
    ComponentFactory(name="Background workers", group=platform)
    website = ComponentFactory(name="Website")
    past = open_incident(name="Login emails delayed", body="Emails are arriving late.")
    incident_resolve(incident=past, body="All delayed emails were delivered.")
    schedule_maintenance(name="Database upgrade")
    incident = open_incident(
        name="Slow page loads",
        body="We are investigating slow page loads on the **website**.",
        component_statuses={website: ComponentStatus.DEGRADED_PERFORMANCE},
    )
    incident_post_update(
        incident=incident,
        status=IncidentStatus.IDENTIFIED,
        body="A cache node is overloaded.",
    )
    return incident

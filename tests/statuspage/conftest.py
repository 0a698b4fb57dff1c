"""A management API client, and a real worker for the snapshot rebuilds.

Cache isolation, plain static files and the browser fixtures (Debian's Chromium driven by
Playwright) for every test live in tests/conftest.py.
"""

import json

import pytest
from celery.contrib.testing.worker import start_worker

from statuspage.api_v1.keys import api_key_create
from statuspage.celery import app
from tests.incidents.factories import StaffFactory


@pytest.fixture
def manage_api(client, page):
    """A management API v1 client with an Admins key: call("get", "/incidents", q="x")."""
    key = api_key_create(owner=StaffFactory(groups=["Admins"]), name="CI")[1]
    base = f"/api/v1/pages/{page.public_id}"

    def call(method, path, body=None, raw=None, **params):
        kwargs = {"HTTP_AUTHORIZATION": f"OAuth {key}"}
        if body is not None or raw is not None:
            kwargs["data"] = raw if raw is not None else json.dumps(body)
            kwargs["content_type"] = "application/json"
        elif params:
            kwargs["data"] = params
        return getattr(client, method)(base + path, **kwargs)

    return call


@pytest.fixture
def worker(settings):
    """A Celery worker in this process on the snapshots queue, with render on write on."""
    settings.BEACON_SNAPSHOT_RENDER_ON_WRITE = True
    with start_worker(
        app, pool="solo", perform_ping_check=False, shutdown_timeout=10, queues=["snapshots"]
    ) as running:
        yield running

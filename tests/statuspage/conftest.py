"""Browser fixtures: Debian's Chromium driven by Playwright, never a downloaded browser; and
a management API client.

Cache isolation and plain static files for every test live in tests/conftest.py.
"""

import json
import os

import pytest

from statuspage.api_keys import api_key_create
from tests.incidents.factories import StaffFactory

# Playwright's sync API runs an event loop in the test thread; the ORM calls the tests make
# around it are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def browser_page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


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

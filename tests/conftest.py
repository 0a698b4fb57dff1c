import contextlib
import os
import shutil
import uuid

# Read when settings load: migrations and tests must not queue snapshot rebuilds on a broker.
os.environ.setdefault("SNAPSHOT_RENDER_ON_WRITE", "0")
# Playwright's sync API runs an event loop in the test thread; the ORM calls the tests make
# around it are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.management import call_command
from pytest_django.fixtures import validate_django_db

from statuspage.db_router import REPLICA
from statuspage.models import PageSettings
from statuspage.public.snapshots import store
from tests.incidents.factories import StaffFactory, sign_in_staff


def pytest_sessionstart(session):
    """The translation catalogues compiled into the tree's locale/ (`make install` does the same),
    so that `pytest` alone renders other languages; compilemessages skips a .mo newer than its
    .po. Without GNU gettext the tests that need a language fail and say so."""
    if shutil.which("msgfmt"):
        call_command("compilemessages", ignore_patterns=[".venv", "var"], verbosity=0)


def pytest_collection_modifyitems(items):
    """With DATABASE_REPLICA_URL set, settings.py makes the "replica" alias a test mirror of
    the test database: every test that uses the database lists it, so that the reads the
    router sends there are allowed (a transactional test sees its own commits on it; inside a
    test's transaction the router reads from the primary)."""
    if REPLICA not in django_settings.DATABASES:
        return
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker is None and "_django_db_helper" not in getattr(item, "fixturenames", ()):
            continue
        transaction, reset_sequences, databases, serialized_rollback, available_apps = (
            validate_django_db(marker) if marker else (False, False, None, False, None)
        )
        if databases == "__all__" or REPLICA in (databases or ()):
            continue
        marked = pytest.mark.django_db(
            transaction=transaction,
            reset_sequences=reset_sequences,
            databases=[*(databases or ["default"]), REPLICA],
            serialized_rollback=serialized_rollback,
            available_apps=available_apps,
        )
        item.add_marker(marked, append=False)


@pytest.fixture(autouse=True)
def _isolated_cache_and_static_files(settings, tmp_path):
    """Each test gets a cache nobody else writes to, and needs no collectstatic manifest.

    With REDIS_URL the real Redis backend is kept under a key prefix of the test's own
    (clearing would flush the whole Redis database); otherwise a private memory cache.
    """
    if os.environ.get("REDIS_URL"):
        settings.CACHES = {
            "default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}
        }
    else:
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": f"beacon-test-{uuid.uuid4().hex}",
            }
        }
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # Snapshots: a directory of the test's own, and changes visible at once (no coalescing
    # delay, no generation polling interval); render-on-write is tested where it matters.
    settings.BEACON_SNAPSHOT_DIR = tmp_path / "snapshots"
    settings.BEACON_SNAPSHOT_GENERATION_CHECK = 0
    settings.BEACON_SNAPSHOT_SETTLE_SECONDS = 0
    settings.BEACON_SNAPSHOT_RENDER_ON_WRITE = False
    settings.BEACON_SNAPSHOT_PROBE_SECONDS = 3600
    store.reset_memory()
    yield
    if not os.environ.get("REDIS_URL"):
        with contextlib.suppress(Exception):  # a test may have made the cache unreachable
            cache.clear()


@pytest.fixture
def page(db) -> PageSettings:
    page = PageSettings.load()
    page.name = "Acme"
    page.url = "https://status.acme.test"
    page.save()
    return PageSettings.load()


@pytest.fixture
def responder(client):
    """A staff member of the Responders group, signed in with both factors."""
    user = StaffFactory(groups=["Responders"])
    sign_in_staff(client, user)
    return user


# Browser tests drive Debian's Chromium through Playwright, never a downloaded browser.
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
def csp_violations(browser_page) -> list[str]:
    """What the browser's console says about Content-Security-Policy violations on the page."""
    violations: list[str] = []

    def note(message):
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    browser_page.on("console", note)
    return violations


@pytest.fixture
def staff_browser_page(browser_page, client, live_server):
    """The browser signed in as a superuser (both factors), on the live server."""
    from tests.incidents.factories import StaffFactory, sign_in_staff

    sign_in_staff(client, StaffFactory(is_superuser=True))
    browser_page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    return browser_page

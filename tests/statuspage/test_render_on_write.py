"""A change reaches the files nginx serves through a real worker, before anyone reads."""

import time

import pytest

from components.services import component_set_status
from tests.components.factories import ComponentFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_status_change_is_rebuilt_by_the_worker_within_a_second(page, settings, worker):
    api = ComponentFactory(name="API")
    index = settings.BEACON_SNAPSHOT_DIR / "files" / "index.html"

    changed_at = time.monotonic()
    component_set_status(component=api, status="major_outage")
    while time.monotonic() - changed_at < 10:
        if index.exists() and "Major outage" in index.read_text():
            break
        time.sleep(0.05)
    else:
        pytest.fail("the worker did not rebuild the page")
    # Generous for a loaded CI machine; typically well under a second (see docs/performance.md).
    assert time.monotonic() - changed_at < 5

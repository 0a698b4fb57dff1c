"""The worker's rebuild reads each output's rows once for all its languages (shared_reads),
never handing a read to a render of a later generation, and renders what a fresh render of
each language would."""

import re

import pytest

from incidents import services
from incidents.models import IncidentStatus
from statuspage.lib import shared_reads
from statuspage.public import public_cache, selectors
from statuspage.public.snapshots import build, keys, store
from statuspage.templatetags import beacon
from tests.components.factories import HealthCheckFactory
from tests.incidents.factories import open_incident
from tests.statuspage.test_languages import api, set_languages  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db

LANGUAGES = ("en", "de", "fr", "ja")


def test_an_outputs_languages_are_next_to_each_other_in_the_hot_set(api):  # noqa: F811
    set_languages(enabled=LANGUAGES)
    incident = open_incident(component_statuses={api: "major_outage"})
    hot = keys.public_keys()
    page = f"/incidents/{incident.public_id}/"
    at = hot.index(page)
    assert hot[at : at + 1 + len(LANGUAGES)] == [page, *(f"/{lang}{page}" for lang in LANGUAGES)]
    # The page first, in every language, then the API widgets and clients poll.
    assert hot[: 2 + len(LANGUAGES)] == [
        "/",
        *(f"/{lang}/" for lang in LANGUAGES),
        "/api/v2/summary.json",
    ]
    assert "/de/api/v2/summary.json" not in hot


def test_a_rebuild_reads_an_incident_once_for_all_its_languages(api, monkeypatch):  # noqa: F811
    set_languages(enabled=LANGUAGES)
    incident = open_incident(name="Checkout errors", component_statuses={api: "major_outage"})
    reads = []
    real = selectors.incident_detail.__wrapped__

    def counted(code, **kwargs):
        reads.append(code)
        return real(code, **kwargs)

    monkeypatch.setattr(selectors, "incident_detail", shared_reads.shared(counted))
    build.rebuild_hot_snapshots()

    assert reads.count(incident.public_id) == 1
    for prefix in ("", *(f"/{lang}" for lang in LANGUAGES)):
        snapshot = store.load(f"{prefix}/incidents/{incident.public_id}/")
        assert snapshot is not None and b"Checkout errors" in snapshot.body, prefix


def test_each_language_is_what_a_fresh_render_of_it_gives(api):  # noqa: F811
    set_languages(enabled=LANGUAGES)
    incident = open_incident(name="Checkout errors", component_statuses={api: "major_outage"})
    services.incident_post_update(
        incident=incident, status=IncidentStatus.IDENTIFIED, body="A bad **deploy**."
    )
    public_cache.invalidate()
    build.rebuild_hot_snapshots()
    beacon.update_items.clear()  # each fresh render renders its updates afresh too
    for key in keys.public_keys():
        kept = store.load(key)
        assert kept is not None, key
        fresh = build.render_key(key).body
        assert without_render_time(kept.body) == without_render_time(fresh), key


def without_render_time(body: bytes) -> bytes:
    """The page's "Last updated" is the moment of its render."""
    return re.sub(rb"(data-last-updated.*?<time datetime=)[^>]*>[^<]*", rb"\1", body)


def test_a_change_between_two_languages_is_in_the_later_language(api, monkeypatch):  # noqa: F811
    """The English page is read and rendered, then an update is posted: the German page,
    stamped with the newer generation, must show it rather than the English page's read."""
    set_languages(enabled=("en", "de"))
    incident = open_incident(name="Checkout errors", component_statuses={api: "major_outage"})
    page = f"/incidents/{incident.public_id}/"
    real_render = build.render_key
    changed = []

    def render_then_change(key, **kwargs):
        snapshot = real_render(key, **kwargs)
        if key == f"/en{page}" and not changed:
            services.incident_post_update(
                incident=incident, status=IncidentStatus.IDENTIFIED, body="Rolled back the deploy"
            )
            changed.append(public_cache.invalidate())
        return snapshot

    monkeypatch.setattr(build, "render_key", render_then_change)
    build.rebuild_hot_snapshots()

    german = store.load(f"/de{page}")
    assert german is not None and changed
    assert german.generation == changed[0]
    assert b"Rolled back the deploy" in german.body
    english = store.load(f"/en{page}")
    assert english is not None and english.generation != changed[0]


def test_reads_are_shared_only_inside_a_rebuild_and_within_one_generation():
    calls = []

    @shared_reads.shared
    def read(code, *, internal=False):
        calls.append((code, internal))
        return len(calls)

    assert read("a") == 1 and read("a") == 2  # outside a rebuild, every call reads
    with shared_reads.sharing():
        assert read("a") == 3  # no render begun: nothing to name the read's generation
        shared_reads.render_generation("g1")
        assert read("a") == 4
        assert read("a") == 4
        assert read("a", internal=True) == 5
        shared_reads.render_generation("g1")
        assert read("a") == 4
        shared_reads.render_generation("g2")
        assert read("a") == 6
        for n in range(shared_reads.KEPT_READS):
            read(f"other-{n}")
        assert read("a") == 7 + shared_reads.KEPT_READS  # pushed out by newer reads
    assert read("a") == 8 + shared_reads.KEPT_READS


def test_what_a_shared_read_draws_is_in_each_language_s_words(api):  # noqa: F811
    """The page's response-time charts are drawn from the shared read: each language draws
    its own, not the first language's."""
    set_languages(enabled=("en", "de"))
    HealthCheckFactory(component=api, name="Health endpoint", show_on_page=True)
    build.rebuild_hot_snapshots()
    english, german = (store.load(key).body.decode() for key in ("/en/", "/de/"))
    assert "API Health endpoint: response times, last 24 hours" in english
    assert "API Health endpoint: Antwortzeiten, letzte" in german
    assert "response times" not in german

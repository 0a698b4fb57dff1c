"""A render error is not an outage: one incident that cannot be rendered is shown as plain
text, the rest of every output stays current, and staff are told once."""

import logging
import sys
from datetime import timedelta

import pytest
from django.core import mail
from django.db import DataError, OperationalError
from django.test import Client

from incidents.services import incident_post_update
from statuspage.models import PageSettings
from statuspage.public import public_cache
from statuspage.public.snapshots import build, store
from tests.components.factories import ComponentFactory
from tests.incidents.factories import StaffFactory, open_incident, schedule_maintenance

pytestmark = pytest.mark.django_db(transaction=True)

MARKER = "RENDER-BOMB"
HOSTILE = f"{MARKER} <script>alert(1)</script> & <b>bold</b>\nsecond line"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"


@pytest.fixture
def api(page):
    return ComponentFactory(name="API")


@pytest.fixture
def staff(page, settings):
    # Staff are told by a task: run it here rather than leave it in the test broker.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # A superuser: transactional tests flush the groups the migrations made.
    return StaffFactory(is_superuser=True, email="oncall@acme.test")


def make_renderer_raise(monkeypatch, error: Exception):
    """The Markdown renderer is the edge: it raises for any text carrying the marker, wherever
    the public surface imported it (the template filter, the feeds, the calendar)."""
    from statuspage.lib import markdown  # noqa: F401 - imported so that it is patched
    from statuspage.templatetags import beacon  # noqa: F401 - likewise

    original = markdown.render_markdown

    def render(text):
        if MARKER in (text or ""):
            raise error
        return original(text)

    importers = [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("statuspage") and getattr(module, "render_markdown", None) is original
    ]
    assert len(importers) >= 3  # statuspage.lib.markdown, the template filter, the feeds
    for module in importers:
        monkeypatch.setattr(module, "render_markdown", render)


def get(client, url, status=200):
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    return response.content.decode()


@pytest.mark.parametrize(
    "error",
    [
        ValueError("unbalanced markup"),
        RecursionError("maximum recursion depth exceeded"),
        KeyError("footnote"),
        # A database error that is not an outage (bad data) is a bug like any other.
        DataError("invalid byte sequence for encoding UTF8"),
    ],
    ids=["value-error", "recursion", "key-error", "data-error"],
)
def test_one_unrenderable_incident_does_not_stop_the_page_from_updating(
    api, staff, monkeypatch, error
):
    client = Client(raise_request_exception=False)
    make_renderer_raise(monkeypatch, error)
    bad = open_incident(
        name="Bad <i>text</i>", body=HOSTILE, component_statuses={api: "degraded_performance"}
    )
    get(client, "/")

    # A real major outage, posted after the bad incident, reaches every output at once.
    db = ComponentFactory(name="Database")
    open_incident(name="Database down", component_statuses={db: "major_outage"})
    page = get(client, "/")
    assert "Database down" in page and "Major outage" in page
    assert "We cannot refresh" not in page
    assert store.refresh_failing_since() is None

    # The bad incident is there, as escaped plain text, and nothing it says is markup.
    assert f'<a href="/incidents/{bad.public_id}/">Bad &lt;i&gt;text&lt;/i&gt;</a>' in page
    assert ESCAPED in page
    assert "<script>alert(1)" not in page and "<b>bold</b>" not in page

    detail = get(client, f"/incidents/{bad.public_id}/")
    assert ESCAPED in detail and "second line" in detail and "<script>alert" not in detail
    assert "We cannot refresh" not in detail
    for url in ["/history/", "/history.atom", "/history.rss", "/api/v2/summary.json"]:
        assert "Database down" in get(client, url), url
    # In the feed the entry is HTML inside XML: escaped once more, and never a live tag.
    atom = get(client, "/history.atom")
    assert "&amp;lt;script&amp;gt;" in atom and "&lt;script&gt;" not in atom


def test_staff_are_told_once_per_failing_incident_not_on_every_rebuild(
    api, staff, monkeypatch, caplog
):
    client = Client(raise_request_exception=False)
    make_renderer_raise(monkeypatch, ValueError("unbalanced markup"))
    bad = open_incident(name="Storage trouble", body=HOSTILE)
    for n in range(3):
        incident_post_update(incident=bad, status="identified", body=f"{MARKER} update {n}")
        for url in ["/", f"/incidents/{bad.public_id}/", "/history/", "/history.atom"]:
            get(client, url)
        build.rebuild_hot_snapshots()

    [email] = mail.outbox
    assert email.to == ["oncall@acme.test"]
    assert "Storage trouble" in email.subject
    assert f"/admin/incidents/incident/{bad.pk}/change/" in email.body
    failures = [r for r in caplog.records if "could not be rendered" in r.getMessage()]
    assert len(failures) == 1 and failures[0].levelno == logging.ERROR

    # Another failing incident is another alert.
    open_incident(name="Second trouble", body=MARKER)
    get(client, "/")
    assert [m.subject for m in mail.outbox][1:] == [
        "[Acme] Incident “Second trouble” cannot be shown as written"
    ]


def test_an_incident_page_never_answers_503_for_a_render_bug(api, staff, monkeypatch):
    client = Client(raise_request_exception=False)
    make_renderer_raise(monkeypatch, TypeError("unsupported operand"))
    old = open_incident(name="Old one", body=MARKER, started_at=None)
    schedule = schedule_maintenance(name="Router swap", body=HOSTILE, starts_in=timedelta(hours=1))
    incident_post_update(incident=old, status="resolved", body=f"{MARKER} postmortem-ish")

    for incident in (old, schedule):
        response = client.get(f"/incidents/{incident.public_id}/")
        assert response.status_code == 200
        assert "We cannot refresh" not in response.content.decode()
    # The calendar carries the maintenance's text as it was typed.
    assert "Router swap" in get(client, "/maintenance.ics")


def test_the_worker_rebuilds_everything_else_when_one_output_cannot_be_rendered(
    api, staff, monkeypatch, settings
):
    """A bug outside any incident (here the footer) keeps that output's last good copy, with
    no outage banner; the worker still rebuilds and writes every other output."""
    client = Client(raise_request_exception=False)
    make_renderer_raise(monkeypatch, ValueError("unbalanced markup"))
    build.rebuild_hot_snapshots()
    page = PageSettings.objects.get(pk=1)
    page.footer_text = MARKER
    page.save()
    open_incident(name="Queue delays", component_statuses={api: "major_outage"})

    build.rebuild_hot_snapshots()
    files = settings.BEACON_SNAPSHOT_DIR / "files"
    assert "Queue delays" in (files / "api/v2/summary.json").read_text()
    html = get(client, "/")
    assert "We cannot refresh" not in html and store.refresh_failing_since() is None
    assert "Queue delays" in get(client, "/api/v2/summary.json")
    public_cache.invalidate()
    assert client.get("/").status_code == 200  # the last good copy, never a 503


def test_a_database_outage_while_rendering_an_incident_is_still_an_outage(api, staff, monkeypatch):
    """The isolation lets an unreachable database through: that is the notice, not plain text."""
    client = Client(raise_request_exception=False)
    get(client, "/")
    make_renderer_raise(monkeypatch, OperationalError("server closed the connection unexpectedly"))
    open_incident(name="Half rendered", body=MARKER)

    page = get(client, "/")
    assert "We cannot refresh this page right now" in page
    assert "Half rendered" not in page  # the last good copy, not a page missing its incidents
    assert mail.outbox == []


@pytest.mark.parametrize(
    "tag",
    ["{% isolated %}", "{% isolated incident bogus=1 %}", "{% isolated incident h1 %}"],
)
def test_the_isolated_tag_refuses_what_it_does_not_know(tag):
    from django.template import Template, TemplateSyntaxError

    with pytest.raises(TemplateSyntaxError):
        Template("{% load beacon %}" + tag + "{% endisolated %}")

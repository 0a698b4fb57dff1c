"""The public pages as a visitor (and htmx) sees them: content, safety, cache and queries."""

import re
from datetime import UTC, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from components.models import ComponentStatus
from components.services import component_set_status
from incidents.models import IncidentStatus
from incidents.services import incident_post_update, incident_resolve, postmortem_publish
from statuspage.models import PageSettings
from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import open_incident, schedule_maintenance

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def html_of(client, url, **headers) -> str:
    response = client.get(url, **headers)
    assert response.status_code == 200
    return response.content.decode()


def section(html: str, labelled_by: str) -> str:
    """The <section aria-labelledby=...> of a page, or "" when the page has none."""
    match = re.search(
        rf'<section[^>]*aria-labelledby="{labelled_by}".*?</section>', html, flags=re.S
    )
    return match.group(0) if match else ""


def text(html: str) -> str:
    """Roughly what a screen reader says: tags and aria-hidden parts gone, spaces collapsed."""
    html = re.sub(r'<span aria-hidden="true">.*?</span>', "", html)
    html = re.sub(r"</?(span|strong|em|a|time|svg|use)\b[^>]*>", "", html)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def bars(html: str) -> list[str]:
    return re.findall(r'<ol class="bar".*?</ol>', html, flags=re.S)


# The overall banner


@pytest.mark.parametrize(
    ("statuses", "description", "tone"),
    [
        ([], "All Systems Operational", "ok"),
        (["degraded_performance"], "Partially Degraded Service", "minor"),
        (["partial_outage"], "Minor Service Outage", "minor"),
        (["major_outage"], "Partial System Outage", "major"),
        (["major_outage", "major_outage", "major_outage"], "Major System Outage", "critical"),
        (["under_maintenance"], "Service Under Maintenance", "maintenance"),
    ],
)
def test_banner_describes_the_overall_status(client, page, statuses, description, tone):
    ComponentFactory.create_batch(3 - len(statuses) or 1)
    for status in statuses:
        ComponentFactory(status=status)

    banner = section(html_of(client, "/"), "overall-status")

    assert f'class="banner tone-{tone}"' in banner
    assert description in text(banner)
    assert f'<use href="#i-{tone}">' in banner  # an icon, not colour alone


# Incidents and maintenances on the front page


def test_active_incident_shows_its_latest_update(client, page):
    api = ComponentFactory(name="API")
    incident = open_incident(
        name="Elevated API errors",
        body="We are looking into it.",
        component_statuses={api: ComponentStatus.PARTIAL_OUTAGE},
    )
    incident_post_update(
        incident=incident, status=IncidentStatus.IDENTIFIED, body="A bad deploy; rolling back."
    )

    active = section(html_of(client, "/"), "active-incidents")

    assert f'href="/incidents/{incident.public_id}/"' in active
    assert "Elevated API errors" in active
    assert "Identified" in active
    assert "A bad deploy; rolling back." in active
    assert "We are looking into it." not in active
    assert "This incident affects: API." in text(active)
    assert re.search(r'<time datetime="[^"]+Z" data-format="datetime">', active)


def test_resolved_incident_is_no_longer_active(client, page):
    incident = open_incident(name="Slow logins")
    incident_resolve(incident=incident)

    html = html_of(client, "/")

    assert section(html, "active-incidents") == ""
    assert "Slow logins" in section(html, "past-incidents")


def test_upcoming_maintenance_shows_its_window(client, page):
    maintenance = schedule_maintenance(name="Database upgrade", starts_in=timedelta(days=2))

    upcoming = section(html_of(client, "/"), "scheduled-maintenance")

    assert "Database upgrade" in upcoming
    start = maintenance.scheduled_for.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
    end = maintenance.scheduled_until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
    assert f'<time datetime="{start}' in upcoming
    assert f'<time datetime="{end}' in upcoming


def test_maintenance_in_progress_has_its_own_section(client, page):
    db = ComponentFactory(name="Database")
    maintenance = schedule_maintenance(name="Failover drill", affected_components=[db])
    incident_post_update(
        incident=maintenance, status=IncidentStatus.IN_PROGRESS, body="Drill started."
    )

    html = html_of(client, "/")

    in_progress = section(html, "maintenance-in-progress")
    assert "Failover drill" in in_progress
    assert "Drill started." in in_progress
    assert section(html, "scheduled-maintenance") == ""
    assert "Service Under Maintenance" in section(html, "overall-status")


# Components, groups and uptime bars


def test_groups_show_their_worst_status_and_open_when_degraded(client, page):
    platform = ComponentGroupFactory(name="Platform")
    ComponentFactory(name="API", group=platform)
    ComponentFactory(name="Workers", group=platform, partial_outage=True)
    apps = ComponentGroupFactory(name="Apps")
    ComponentFactory(name="Web", group=apps)

    html = html_of(client, "/")

    platform_html = re.search(rf'<details[^>]*id="group-{platform.public_id}"[^>]*>', html)
    apps_html = re.search(rf'<details[^>]*id="group-{apps.public_id}"[^>]*>', html)
    assert " open" in platform_html.group(0)
    assert " open" not in apps_html.group(0)
    summaries = re.findall(r"<summary>.*?</summary>", html, flags=re.S)
    assert "Partial outage" in text(summaries[0]) and "Platform" in text(summaries[0])
    assert "Operational" in text(summaries[1]) and "Apps" in text(summaries[1])


def test_component_shows_status_description_and_uptime(client, page):
    ComponentFactory(name="API", description="The REST API.", degraded_performance=True)

    components = section(html_of(client, "/"), "components-title")

    assert "API" in components
    assert "Degraded performance" in components
    assert 'role="tooltip"' in components and "The REST API." in components
    assert "100% uptime" in components  # degraded performance costs no uptime by default


def spans(cells: list[str]) -> list[int]:
    return [int(m.group(1)) if (m := re.search(r"\bspan-(\d+)", c)) else 1 for c in cells]


def test_uptime_bar_covers_90_days_in_runs_with_tooltips(client, page):
    api = ComponentFactory(name="API")
    open_incident(name="API is down", component_statuses={api: ComponentStatus.MAJOR_OUTAGE})

    [bar] = bars(html_of(client, "/"))

    cells = re.findall(r"<li [^>]*>", bar)
    assert sum(spans(cells)) == 90
    assert 'aria-label="API: uptime per day over the past 90 days"' in bar
    today = timezone.localdate().strftime("%b %-d, %Y")
    assert re.search(rf'aria-label="{today}\. [\d.]+% uptime\. Incidents: API is down\."', bar)
    assert 'class="tone-critical tip-end" tabindex="0"' in cells[-1]  # today, the one tab stop
    assert not any("tabindex" in cell for cell in cells[:-1])
    # Before the component existed: no data, in two runs split where narrow screens start.
    assert spans(cells) == [60, 29, 1]
    assert 'class="tone-nodata early span-60"' in cells[0] and "No data." in cells[0]
    assert 'class="tone-nodata tip-end span-29"' in cells[1]


def test_only_showcased_components_get_an_uptime_bar(client, page):
    ComponentFactory(name="API")
    ComponentFactory(name="Billing", showcase=False)

    html = html_of(client, "/")

    assert "Billing" in html
    assert len(bars(html)) == 1


def test_components_shown_only_when_degraded_stay_hidden_while_operational(client, page):
    ComponentFactory(name="Quiet thing", only_show_if_degraded=True)
    ComponentFactory(name="Broken thing", only_show_if_degraded=True, major_outage=True)

    html = html_of(client, "/")

    assert "Quiet thing" not in html
    assert "Broken thing" in html


# Past incidents


def test_past_incidents_list_14_days_with_quiet_days_said_so(client, page):
    api = ComponentFactory(name="API")
    incident = open_incident(
        name="Timeouts", body="Looking.", component_statuses={api: ComponentStatus.MAJOR_OUTAGE}
    )
    incident_resolve(incident=incident, body="All good now.")

    past = section(html_of(client, "/"), "past-incidents")

    assert len(re.findall(r'<h3 class="day-title">', past)) == 14
    assert past.count("No incidents reported.") == 13
    assert text(past).index("Resolved") < text(past).index("Investigating")
    assert "All good now." in past and "Looking." in past
    assert 'href="/history/"' in past


# The incident page


def test_incident_page_lists_updates_newest_first_with_component_changes(client, page):
    api = ComponentFactory(name="API")
    incident = open_incident(
        name="Elevated API errors",
        body="First look.",
        component_statuses={api: ComponentStatus.MAJOR_OUTAGE},
    )
    incident_post_update(
        incident=incident,
        status=IncidentStatus.MONITORING,
        body="A fix is out.",
        component_statuses={api: ComponentStatus.DEGRADED_PERFORMANCE},
    )
    incident_resolve(incident=incident, body="Resolved for good.")

    html = html_of(client, reverse("incident-detail", args=[incident.public_id]))
    updates = text(section(html, "updates-title"))

    assert "<h1" in html and "Elevated API errors" in html
    assert updates.index("Resolved for good.") < updates.index("A fix is out.")
    assert updates.index("A fix is out.") < updates.index("First look.")
    assert "API: Operational changed to Major outage" in updates
    assert "API: Major outage changed to Degraded performance" in updates
    assert "Critical" in html  # impact
    assert "Duration" in html and "Resolved" in html
    assert "Postmortem" not in html


def test_incident_page_shows_a_published_postmortem(client, page):
    incident = open_incident(name="Outage")
    incident_resolve(incident=incident)
    postmortem_publish(incident=incident, body="## What happened\n\nA **disk** filled up.")

    html = html_of(client, reverse("incident-detail", args=[incident.public_id]))

    postmortem = section(html, "postmortem-title")
    assert "<strong>disk</strong> filled up" in postmortem


def test_maintenance_page_shows_its_scheduled_window(client, page):
    maintenance = schedule_maintenance(name="Network upgrade")

    html = html_of(client, reverse("incident-detail", args=[maintenance.public_id]))

    assert "Scheduled maintenance" in html
    assert "Scheduled</dt>" in html
    start = maintenance.scheduled_for.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
    assert f'<time datetime="{start}' in html


@pytest.mark.parametrize("code", ["doesnotexist", "no-such-code", "x" * 20])
def test_unknown_incident_is_a_404(client, page, code):
    response = client.get(f"/incidents/{code}/")

    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


# History


def test_history_groups_incidents_by_month_and_paginates(client, page):
    now = timezone.now()
    for days_ago in range(26):
        open_incident(
            name=f"Old incident {days_ago}",
            status=IncidentStatus.RESOLVED,
            backfilled=True,
            started_at=now - timedelta(days=days_ago * 3 + 1),
        )

    first = html_of(client, "/history/")
    second = html_of(client, "/history/?page=2")

    months = re.findall(r'<section class="month"[^>]*>\s*<h2[^>]*>([^<]+)</h2>', first)
    assert len(months) >= 3
    assert months[0] == now.strftime("%B %Y")
    assert "Old incident 0<" in first and "Old incident 25<" not in first
    assert 'href="?page=2"' in first and "Page 1 of 2" in first
    assert "Old incident 25<" in second and 'href="?page=1"' in second


def test_history_survives_a_bad_page_number(client, page):
    assert "Incident history" in html_of(client, "/history/?page=abc")
    assert client.get("/history/?page=999").status_code == 404


# htmx, safety, robots, branding


@pytest.mark.parametrize("url_name", ["status-page", "incident-detail", "history"])
def test_live_refresh_fetches_the_same_snapshot_and_selects_its_body(client, page, url_name):
    incident = open_incident(name="Something")
    args = [incident.public_id] if url_name == "incident-detail" else []
    url = reverse(url_name, args=args)

    full = client.get(url)
    live = client.get(url, **HTMX)

    assert live.content == full.content and live["ETag"] == full["ETag"]
    html = full.content.decode()
    assert 'hx-select="#status-body"' in html and 'hx-swap="outerHTML"' in html
    assert f'hx-get="{url}' in html


def test_markdown_bodies_are_sanitised(client, page):
    incident = open_incident(
        name="<script>alert('name')</script>",
        body="**Careful** <script>alert('body')</script> <img src=x onerror=alert(1)>",
    )

    for url in ["/", f"/incidents/{incident.public_id}/", "/history/"]:
        html = html_of(client, url)
        assert "<script>alert" not in html
        assert "onerror" not in html
        assert "<strong>Careful</strong>" in html


def test_page_is_hidden_from_search_engines_when_asked(
    client, page, django_capture_on_commit_callbacks
):
    assert 'name="robots"' not in html_of(client, "/")

    with django_capture_on_commit_callbacks(execute=True):
        page.hidden_from_search_engines = True
        page.save()

    assert '<meta name="robots" content="noindex">' in html_of(client, "/")


def test_brand_colour_footer_and_links_come_from_the_page_settings(
    client, page, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        page.brand_color = "#6d28d9"
        page.home_url = "https://acme.test"
        page.support_url = "https://acme.test/help"
        page.footer_text = "Questions? [Write to us](https://acme.test/contact)."
        page.save()

    html = html_of(client, "/")

    assert '<rect width="1" height="1" fill="#6d28d9"/>' in html
    assert 'href="https://acme.test/help"' in html
    assert '<a href="https://acme.test/contact" rel="noopener noreferrer nofollow">' in html
    assert "Powered by Beacon" in html
    assert '<script src="/static/js/htmx.min.js"' in html
    head = re.search(r"<head>.*</head>", html, flags=re.S).group(0)
    # Nothing is loaded from elsewhere; the other languages' addresses are links, not loads.
    assert "https://" not in re.sub(r'<link rel="alternate"[^>]*>', "", head)


def test_a_broken_brand_colour_never_reaches_the_page(client, page):
    PageSettings.objects.filter(pk=page.pk).update(brand_color='"><svg')  # fits max_length=7
    page.forget_cached()

    html = html_of(client, "/")

    assert '<rect width="1" height="1" fill="#2563eb"/>' in html
    assert '"><svg' not in html


# Queries and the public cache


def build_page_of(n_components: int, n_incidents: int = 30):
    groups = ComponentGroupFactory.create_batch(5)
    components = [
        ComponentFactory(group=groups[i % 5] if i % 7 else None) for i in range(n_components)
    ]
    for i in range(n_incidents):
        affected = components[i % len(components)]
        incident = open_incident(
            name=f"Incident {i}",
            component_statuses={affected: ComponentStatus.PARTIAL_OUTAGE},
        )
        incident_post_update(incident=incident, status=IncidentStatus.IDENTIFIED, body="Found.")
        if i % 3:
            incident_resolve(incident=incident)
    schedule_maintenance(affected_components=components[:3])


@pytest.mark.parametrize("n_components", [5, 500])
def test_status_page_queries_do_not_grow_with_components_or_incidents(
    client, page, django_assert_max_num_queries, n_components
):
    build_page_of(n_components)

    with django_assert_max_num_queries(12):
        html = html_of(client, "/")

    assert html.count('<li class="update"') >= 30


def test_incident_and_history_queries_are_bounded(client, page, django_assert_max_num_queries):
    build_page_of(20)
    code = open_incident(name="Look here").public_id

    with django_assert_max_num_queries(10):
        html_of(client, f"/incidents/{code}/")
    with django_assert_max_num_queries(10):
        html_of(client, "/history/")


def test_second_visit_is_served_from_the_cache_without_queries(
    client, page, django_assert_num_queries
):
    build_page_of(5, n_incidents=3)
    html_of(client, "/")
    html_of(client, "/", **HTMX)

    with django_assert_num_queries(0):
        html_of(client, "/")
        html_of(client, "/", **HTMX)


def test_a_status_change_shows_up_after_commit(client, page, django_capture_on_commit_callbacks):
    api = ComponentFactory(name="API")
    with django_capture_on_commit_callbacks(execute=True):
        pass
    assert "All Systems Operational" in html_of(client, "/")

    with django_capture_on_commit_callbacks(execute=True):
        component_set_status(component=api, status=ComponentStatus.MAJOR_OUTAGE)

    html = html_of(client, "/")
    assert "Major System Outage" in html
    assert "Major outage" in section(html, "components-title")


def test_head_requests_are_answered_for_uptime_monitors(client, page):
    assert client.head("/").status_code == 200
    assert client.post("/").status_code == 405


def test_uptime_with_any_downtime_never_reads_100_percent():
    from statuspage.templatetags.beacon import percent

    assert percent(99.9999) == "99.99%"
    assert percent(100.0) == "100%"
    assert percent(None) == "No data"


def test_migrating_a_new_release_drops_pages_cached_by_the_old_one(client, page):
    from django.core.management import call_command

    from statuspage.public import public_cache

    before = public_cache.generation()
    call_command("migrate", verbosity=0)
    assert public_cache.generation() != before


def test_pages_advertise_the_history_feeds_and_the_calendar(client, page):
    html = html_of(client, "/")
    assert '<link rel="alternate" type="application/atom+xml"' in html
    assert 'href="/history.rss"' in html
    assert 'href="/maintenance.ics"' in html


def test_component_names_and_descriptions_are_escaped(client, page):
    ComponentFactory(name='<script>alert("n")</script>', description="<img src=x onerror=alert(1)>")

    html = html_of(client, "/")

    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&quot;n&quot;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html

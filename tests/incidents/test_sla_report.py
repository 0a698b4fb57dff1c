"""The monthly SLA report with its incidents: the management API, the staff page and CSV."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Permission

from components.models import ComponentStatus
from components.services import component_set_status, components_backdate, roll_up_uptime
from incidents.models import Incident, IncidentKind, IncidentStatus
from incidents.sla import component_sla_report, group_sla_report, report_csv
from statuspage.api_v1.keys import api_key_create
from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import StaffFactory, sign_in_staff

pytestmark = pytest.mark.django_db
TIERS = [{"below": 99.9, "credit": 10}, {"below": 99, "credit": 25}]
NOW = datetime(2026, 7, 3, tzinfo=UTC)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(autouse=True)
def weights(settings):
    settings.BEACON_UPTIME_WEIGHTS = {"major_outage": 1.0, "partial_outage": 0.3}
    settings.BEACON_API_RATE_LIMIT_PER_MINUTE = 100_000


def incident(component, name, started_at, resolved_at, kind=IncidentKind.INCIDENT):
    row = Incident.objects.create(
        name=name,
        kind=kind,
        status=IncidentStatus.RESOLVED if resolved_at else IncidentStatus.INVESTIGATING,
        started_at=started_at,
        resolved_at=resolved_at,
    )
    row.components.add(component)
    return row


@pytest.fixture
def june(page):
    """A component of a group with 99.9 % and tiers; a major outage of 60 minutes on 10 June
    (uptime 100 x (1 - 60 / 43,200) = 99.861111… %), and incidents around the month."""
    group = ComponentGroupFactory(name="Core", sla_target=Decimal("99.9"), sla_credit_tiers=TIERS)
    api = ComponentFactory(name="=API", group=group)
    other = ComponentFactory(name="Other")
    with time_machine.travel(NOW, tick=False):
        components_backdate(components=[api, other], since=utc(2026, 5, 1))
        component_set_status(
            component=api, status=ComponentStatus.MAJOR_OUTAGE, at=utc(2026, 6, 10, 9)
        )
        component_set_status(
            component=api, status=ComponentStatus.OPERATIONAL, at=utc(2026, 6, 10, 10)
        )
        roll_up_uptime(until=NOW)
    api.refresh_from_db()
    # Across the month's start: 120 minutes in June, 240 to resolve.
    incident(api, "Across midnight", utc(2026, 5, 31, 22), utc(2026, 6, 1, 2))
    incident(api, "Outage", utc(2026, 6, 10, 9), utc(2026, 6, 10, 10))  # 60 minutes
    # Open at the month's end: 60 minutes in June, resolved in July (not in June's MTTR).
    incident(api, "Late", utc(2026, 6, 30, 23), utc(2026, 7, 2))
    incident(api, "Maintenance", utc(2026, 6, 5), utc(2026, 6, 5, 1), kind=IncidentKind.MAINTENANCE)
    incident(api, "May", utc(2026, 5, 2), utc(2026, 5, 2, 1))
    incident(other, "Someone else's", utc(2026, 6, 3), utc(2026, 6, 3, 1))
    return group, api, other


def test_the_report_lists_the_months_incidents_clipped_with_the_mttr(june):
    group, api, _ = june
    report = component_sla_report(component=api, month="2026-06", now=NOW)
    assert [(i.name, i.minutes_in_month) for i in report.incidents] == [
        ("Across midnight", 120),
        ("Outage", 60),
        ("Late", 60),
    ]
    # Resolved in June: 240 and 60 minutes, a mean of 150.
    assert report.mttr_seconds == 150 * 60
    assert report.uptime.terms.inherited
    assert report.uptime.breached
    assert report.uptime.credit.credit == 10
    assert round(report.uptime.figures.uptime_percent, 6) == Decimal("99.861111")


def test_a_month_without_resolved_incidents_has_no_mttr(june):
    _, api, _ = june
    report = component_sla_report(component=api, month="2026-05", now=NOW)
    assert report.mttr_seconds == 60 * 60  # "May", an hour
    report = component_sla_report(component=api, month="2026-04", now=NOW)
    assert report.mttr_seconds is None
    assert report.incidents == []
    assert report.uptime.figures.uptime_percent is None
    assert not report.uptime.breached and report.uptime.credit is None
    text = report_csv(report)
    assert "uptime_percent,no data" in text and "mttr_minutes,\r\n" in text
    assert "breached,no" in text and "credit_percent,\r\n" in text


def test_a_group_report_pools_components_and_their_incidents(june):
    group, api, _ = june
    ComponentFactory(group=group)  # created now: nothing counted in June
    report = group_sla_report(group=group, month="2026-06", now=NOW)
    assert report.kind == "group" and len(report.incidents) == 3
    assert report.uptime.figures.counted_minutes == 43_200


def test_the_csv_holds_the_same_figures_and_defuses_formulas(june):
    _, api, _ = june
    text = report_csv(component_sla_report(component=api, month="2026-06", now=NOW))
    rows = list(csv.reader(io.StringIO(text)))
    figures = {row[0]: row[1] for row in rows if len(row) == 2}
    assert figures["name"] == "'=API"
    assert figures["uptime_percent"] == "99.8611"
    assert figures["counted_minutes"] == "43200.00"
    assert figures["major_outage_minutes"] == "60.00"
    assert figures["breached"] == "yes" and figures["credit_percent"] == "10.00"
    assert figures["mttr_minutes"] == "150.00"
    assert ["Late" in row[1] for row in rows if len(row) == 5][-1]


# The management API


@pytest.fixture
def api_get(client, page):
    key = api_key_create(owner=StaffFactory(groups=["Admins"]), name="CI")[1]

    def get(path, **params):
        return client.get(
            f"/api/v1/pages/{page.public_id}{path}", params, HTTP_AUTHORIZATION=f"OAuth {key}"
        )

    return get


@pytest.fixture
def api_send(client, page):
    key = api_key_create(owner=StaffFactory(groups=["Admins"]), name="CI")[1]

    def send(path, body, method="patch"):
        return getattr(client, method)(
            f"/api/v1/pages/{page.public_id}{path}",
            data=json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"OAuth {key}",
        )

    return send


def test_the_api_sets_and_clears_a_components_terms(june, api_send):
    _, api, _ = june
    path = f"/components/{api.public_id}"
    body = {"component": {"sla_target": 99.95, "sla_credit_tiers": [{"below": 99.95, "credit": 5}]}}
    assert api_send(path, body).status_code == 200
    api.refresh_from_db()
    assert api.sla_target == Decimal("99.95")
    assert api.sla_credit_tiers == [{"below": 99.95, "credit": 5}]
    assert (
        api_send(path, {"component": {"sla_target": None, "sla_credit_tiers": None}}).status_code
        == 200
    )
    api.refresh_from_db()
    assert api.sla_target is None and api.sla_credit_tiers == []


@pytest.mark.parametrize(
    "terms",
    [
        {"sla_target": 0},
        {"sla_target": 100.5},
        {"sla_target": "abc"},
        {"sla_target": 99.123456},
        {"sla_credit_tiers": [{"below": 99, "credit": 10}, {"below": 99.9, "credit": 20}]},
        {"sla_credit_tiers": [{"below": 99, "credit": -1}]},
        {"sla_credit_tiers": [{"below": "x", "credit": 1}]},
        {"sla_credit_tiers": "99:10"},
        {"sla_credit_tiers": [[99, 10]]},
    ],
)
def test_the_api_refuses_bad_terms_and_writes_nothing(june, api_send, terms):
    group, api, _ = june
    response = api_send(f"/components/{api.public_id}", {"component": {"name": "Renamed", **terms}})
    assert response.status_code in (400, 422), response.content
    assert response.json()["message"]
    response = api_send(f"/component-groups/{group.public_id}", {"component_group": terms})
    assert response.status_code in (400, 422), response.content
    api.refresh_from_db()
    group.refresh_from_db()
    assert api.name == "=API" and api.sla_target is None
    assert group.sla_target == Decimal("99.9") and group.sla_credit_tiers == TIERS


def test_the_api_sets_a_groups_terms(june, api_send, api_get):
    group, _, _ = june
    body = {"component_group": {"sla_target": 99.5, "sla_credit_tiers": []}}
    assert api_send(f"/component-groups/{group.public_id}", body).status_code == 200
    with time_machine.travel(NOW, tick=False):
        report = api_get(f"/component-groups/{group.public_id}/sla", month="2026-06").json()
    assert report["target"] == 99.5 and report["credit_tiers"] == []
    assert report["breached"] is False and report["credit_percentage"] is None


def test_the_api_answers_a_components_month(june, api_get):
    _, api, _ = june
    with time_machine.travel(NOW, tick=False):
        response = api_get(f"/components/{api.public_id}/sla", month="2026-06")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["uptime_percentage"] == 99.8611
    assert body["counted_minutes"] == 43200
    assert body["downtime_minutes"] == {
        "degraded_performance": 0,
        "partial_outage": 0,
        "major_outage": 60,
    }
    assert body["target"] == 99.9 and body["target_inherited"] is True
    assert body["breached"] is True and body["credit_percentage"] == 10
    assert body["mttr_minutes"] == 150
    assert [i["name"] for i in body["incidents"]] == ["Across midnight", "Outage", "Late"]
    assert body["range_start"] == "2026-06-01T00:00:00+00:00"
    assert body["partial"] is False


def test_the_api_answers_a_groups_month_and_an_empty_group(june, api_get):
    group, _, _ = june
    with time_machine.travel(NOW, tick=False):
        body = api_get(f"/component-groups/{group.public_id}/sla", month="2026-06").json()
        assert body["kind"] == "group" and body["uptime_percentage"] == 99.8611
        empty = ComponentGroupFactory()
        body = api_get(f"/component-groups/{empty.public_id}/sla", month="2026-06").json()
    assert body["uptime_percentage"] is None and body["breached"] is False
    assert body["incidents"] == [] and body["mttr_minutes"] is None


@pytest.mark.parametrize(
    "month", ["2026-13", "0000-01", "2026-1", "2026-01\x01", "99999-01", "x" * 10_000, ""]
)
def test_the_api_refuses_a_bad_month_with_400(june, api_get, month):
    _, api, _ = june
    response = api_get(f"/components/{api.public_id}/sla", month=month)
    assert response.status_code == 400, response.content
    assert "month" in response.json()["message"]


def test_the_api_refuses_a_key_whose_owner_may_not_view_components(june, client, page):
    _, api, _ = june
    key = api_key_create(owner=StaffFactory(), name="Nobody")[1]
    response = client.get(
        f"/api/v1/pages/{page.public_id}/components/{api.public_id}/sla",
        {"month": "2026-06"},
        HTTP_AUTHORIZATION=f"OAuth {key}",
    )
    assert response.status_code == 403


def test_the_api_answers_404_for_an_unknown_component(page, api_get):
    response = api_get("/components/nope/sla", month="2026-06")
    assert response.status_code == 404


# The staff page


def test_staff_read_the_printable_report(june, client, django_assert_max_num_queries):
    _, api, _ = june
    sign_in_staff(client, StaffFactory(groups=["Responders"]))
    with time_machine.travel(NOW, tick=False), django_assert_max_num_queries(12):
        response = client.get(
            "/admin/sla/", {"subject": f"component:{api.public_id}", "month": "2026-06"}
        )
    assert response.status_code == 200
    text = response.content.decode()
    assert "99.8611 %" in text
    assert "99.9 % (from its group)" in text
    assert "Below 99.9 %: 10 % credit" in text and "Below 99 %: 25 % credit" in text
    assert "Across midnight" in text and "Someone else" not in text
    assert "css/sla_report.css" in text
    assert "format=csv" in text


def test_staff_download_the_csv(june, client):
    _, api, _ = june
    sign_in_staff(client, StaffFactory(groups=["Responders"]))
    with time_machine.travel(NOW, tick=False):
        response = client.get(
            "/admin/sla/",
            {"subject": f"component:{api.public_id}", "month": "2026-06", "format": "csv"},
        )
    assert response["Content-Type"].startswith("text/csv")
    assert f"sla-{api.public_id}-2026-06.csv" in response["Content-Disposition"]
    assert "uptime_percent,99.8611" in response.content.decode()


@pytest.mark.parametrize("month", ["2026-13", "0000-01", "2026-1", "2026-01\x00", "9" * 300])
def test_a_bad_month_is_a_form_error_not_a_500(june, client, month):
    _, api, _ = june
    sign_in_staff(client, StaffFactory(groups=["Responders"]))
    response = client.get(
        "/admin/sla/", {"subject": f"group:{api.group.public_id}", "month": month}
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert 'class="errorlist' in text
    assert "sla-sheet" not in text


def test_an_unknown_subject_is_a_form_error(june, client):
    sign_in_staff(client, StaffFactory(groups=["Responders"]))
    response = client.get("/admin/sla/", {"subject": "component:nope", "month": "2026-06"})
    assert response.status_code == 200 and "sla-sheet" not in response.content.decode()


def test_with_only_groups_the_page_opens_on_the_first_group(page, client):
    ComponentGroupFactory(name="Lonely")
    sign_in_staff(client, StaffFactory(groups=["Responders"]))
    text = client.get("/admin/sla/").content.decode()
    assert "Lonely · " in text and "no data" in text and 'class="errorlist' not in text


def test_with_nothing_to_report_the_page_shows_the_empty_form(page, client):
    sign_in_staff(client, StaffFactory(groups=["Responders"]))
    response = client.get("/admin/sla/")
    assert response.status_code == 200 and "sla-sheet" not in response.content.decode()


def test_staff_without_the_components_view_permission_are_refused(page, client):
    sign_in_staff(client, StaffFactory())
    assert client.get("/admin/sla/").status_code == 403


def test_a_group_report_needs_the_group_view_permission_as_in_the_api(june, client):
    group, api, _ = june
    staff = StaffFactory()
    staff.user_permissions.add(Permission.objects.get(codename="view_component"))
    sign_in_staff(client, staff)

    month = "2026-06"
    assert (
        client.get(f"/admin/sla/?subject=component:{api.public_id}&month={month}").status_code
        == 200
    )
    assert (
        client.get(f"/admin/sla/?subject=group:{group.public_id}&month={month}").status_code == 403
    )


def test_the_change_pages_and_the_console_link_to_the_report(june, client):
    group, api, _ = june
    sign_in_staff(client, StaffFactory(is_superuser=True))
    page = client.get(f"/admin/components/component/{api.pk}/change/").content.decode()
    assert f"/admin/sla/?subject=component:{api.public_id}" in page
    page = client.get(f"/admin/components/componentgroup/{group.pk}/change/").content.decode()
    assert f"/admin/sla/?subject=group:{group.public_id}" in page
    assert "/admin/sla/" in client.get("/admin/").content.decode()


def post_group_terms(client, group, *, target, tiers):
    """The group's change page, as a browser submits it with these SLA terms (the form
    carries the tiers' initial value, as for every field with a callable default)."""
    sign_in_staff(client, StaffFactory(is_superuser=True))
    return client.post(
        f"/admin/components/componentgroup/{group.pk}/change/",
        {
            "name": group.name,
            "description": "",
            "position": 1,
            "sla_target": target,
            "sla_credit_tiers": tiers,
            "initial-sla_credit_tiers": json.dumps(group.sla_credit_tiers),
            "components-TOTAL_FORMS": 0,
            "components-INITIAL_FORMS": 0,
        },
    )


def test_tiers_out_of_order_are_a_form_error_in_the_admin(page, client):
    group = ComponentGroupFactory()
    tiers = '[{"below": 99, "credit": 10}, {"below": 99.9, "credit": 25}]'
    response = post_group_terms(client, group, target="-3", tiers=tiers)
    assert response.status_code == 200
    text = response.content.decode()
    assert "list the thresholds from the highest down" in text
    assert "above 0 and at most 100" in text
    group.refresh_from_db()
    assert group.sla_target is None and group.sla_credit_tiers == []


def test_non_numeric_tiers_are_a_form_error_in_the_admin(page, client):
    group = ComponentGroupFactory()
    response = post_group_terms(client, group, target="abc", tiers='[{"below": "x", "credit": 1}]')
    assert response.status_code == 200
    assert "must be a number" in response.content.decode()


def test_staff_set_a_target_and_tiers_in_the_admin(page, client):
    group = ComponentGroupFactory()
    response = post_group_terms(
        client, group, target="99.9", tiers='[{"below": 99.9, "credit": 10}]'
    )
    assert response.status_code == 302
    group.refresh_from_db()
    assert group.sla_target == Decimal("99.9")
    assert group.sla_credit_tiers == [{"below": 99.9, "credit": 10}]


def test_staff_clear_the_tiers_in_the_admin(page, client):
    group = ComponentGroupFactory(sla_target=Decimal("99"), sla_credit_tiers=TIERS)
    response = post_group_terms(client, group, target="", tiers="")
    assert response.status_code == 302
    group.refresh_from_db()
    assert group.sla_target is None and group.sla_credit_tiers == []


def test_the_month_picker_defaults_to_the_current_month(june, client):
    sign_in_staff(client, StaffFactory(groups=["Responders"]))
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        response = client.get("/admin/sla/")
    text = response.content.decode()
    assert response.status_code == 200
    assert 'value="2026-07"' in text
    assert "Partial month" in text

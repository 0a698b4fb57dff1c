import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.urls import reverse

from statuspage.models import PageSettings
from tests.incidents.factories import StaffFactory

CHANGELIST_URL = reverse("admin:statuspage_pagesettings_changelist")

pytestmark = pytest.mark.django_db


def settings_data(**fields):
    return {
        "name": "Acme status",
        "url": "https://status.acme.test",
        "time_zone": "Europe/Paris",
        "home_url": "",
        "support_url": "",
        "brand_color": "#112233",
        "footer_text": "",
        **fields,
    }


def change_url(page):
    return reverse("admin:statuspage_pagesettings_change", args=[page.pk])


def test_settings_list_goes_straight_to_the_one_settings_page(client):
    client.force_login(StaffFactory(groups=["Responders"]))

    response = client.get(CHANGELIST_URL)

    assert response.status_code == 302
    assert response["Location"] == change_url(PageSettings.load())
    assert client.get(response["Location"]).status_code == 200


def test_responder_cannot_change_page_settings(client, page):
    client.force_login(StaffFactory(groups=["Responders"]))

    response = client.post(change_url(page), settings_data())

    assert response.status_code == 403
    assert PageSettings.objects.get().name == "Acme"


def test_admin_changes_page_settings(client, page):
    admin = StaffFactory(groups=["Admins"])
    client.force_login(admin)

    response = client.post(change_url(page), settings_data())

    assert response.status_code == 302
    saved = PageSettings.objects.get()
    assert (saved.name, saved.time_zone, saved.brand_color) == (
        "Acme status",
        "Europe/Paris",
        "#112233",
    )
    assert LogEntry.objects.filter(user=admin, action_flag=CHANGE).exists()


def test_page_settings_cannot_be_added_twice_or_deleted(client, page):
    client.force_login(StaffFactory(is_superuser=True))

    assert client.get(reverse("admin:statuspage_pagesettings_add")).status_code == 403
    delete_url = reverse("admin:statuspage_pagesettings_delete", args=[page.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    assert PageSettings.objects.count() == 1

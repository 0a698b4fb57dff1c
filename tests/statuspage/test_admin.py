import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.urls import reverse

from statuspage.models import PageSettings
from statuspage.public import public_cache
from tests.incidents.factories import StaffFactory, sign_in_staff

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
        "update_interval_minutes": 30,
        "default_language": "en",
        "enabled_languages": ["en", "de", "fr", "es", "ja", "pt-br"],
        **fields,
    }


def change_url(page):
    return reverse("admin:statuspage_pagesettings_change", args=[page.pk])


def test_settings_list_goes_straight_to_the_one_settings_page(client):
    sign_in_staff(client, StaffFactory(groups=["Responders"]))

    response = client.get(CHANGELIST_URL)

    assert response.status_code == 302
    assert response["Location"] == change_url(PageSettings.load())
    assert client.get(response["Location"]).status_code == 200


def test_responder_cannot_change_page_settings(client, page):
    sign_in_staff(client, StaffFactory(groups=["Responders"]))

    response = client.post(change_url(page), settings_data())

    assert response.status_code == 403
    assert PageSettings.objects.get().name == "Acme"


def test_admin_changes_page_settings(client, page):
    admin = StaffFactory(groups=["Admins"])
    sign_in_staff(client, admin)

    response = client.post(change_url(page), settings_data())

    assert response.status_code == 302
    saved = PageSettings.objects.get()
    assert (saved.name, saved.time_zone, saved.brand_color) == (
        "Acme status",
        "Europe/Paris",
        "#112233",
    )
    assert LogEntry.objects.filter(user=admin, action_flag=CHANGE).exists()


@pytest.mark.parametrize("minutes", [0, 5, 45, 1440])
def test_admin_sets_the_promised_update_interval(client, page, minutes):
    sign_in_staff(client, StaffFactory(groups=["Admins"]))

    response = client.post(change_url(page), settings_data(update_interval_minutes=minutes))

    assert response.status_code == 302
    assert PageSettings.objects.get().update_interval_minutes == minutes
    assert PageSettings.load().update_interval_minutes == minutes


def test_admin_sets_the_page_s_languages_as_a_public_change(
    client, page, django_capture_on_commit_callbacks
):
    sign_in_staff(client, StaffFactory(groups=["Admins"]))
    generation = public_cache.generation()

    data = settings_data(default_language="de", enabled_languages=["de", "ja"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(change_url(page), data)

    assert response.status_code == 302
    saved = PageSettings.load()
    assert (saved.default_language, saved.enabled_languages) == ("de", ["de", "ja"])
    assert saved.languages == ("de", "ja")
    assert public_cache.generation() != generation


@pytest.mark.parametrize(
    ("default", "enabled", "field"),
    [
        ("de", ["en", "fr"], "enabled_languages"),  # the default is not enabled
        ("en", [], "enabled_languages"),
        ("en", ["en", "xx"], "enabled_languages"),
        ("en", ["en", "<script>"], "enabled_languages"),
        ("xx", ["en"], "default_language"),
    ],
)
def test_admin_refuses_languages_it_cannot_serve(client, page, default, enabled, field):
    sign_in_staff(client, StaffFactory(groups=["Admins"]))

    data = settings_data(default_language=default, enabled_languages=enabled)
    response = client.post(change_url(page), data)

    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert PageSettings.objects.get().default_language == "en"


@pytest.mark.parametrize("minutes", ["4", "1441", "-5", "half an hour"])
def test_the_promised_update_interval_is_refused_out_of_bounds(client, page, minutes):
    sign_in_staff(client, StaffFactory(groups=["Admins"]))

    response = client.post(change_url(page), settings_data(update_interval_minutes=minutes))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["update_interval_minutes"]
    if minutes in ("4", "1441"):
        assert errors == ["Use between 5 and 1440 minutes (24 hours), or 0 for no reminders."]
    assert PageSettings.objects.get().update_interval_minutes == 30


def test_page_settings_cannot_be_added_twice_or_deleted(client, page):
    sign_in_staff(client, StaffFactory(is_superuser=True))

    assert client.get(reverse("admin:statuspage_pagesettings_add")).status_code == 403
    delete_url = reverse("admin:statuspage_pagesettings_delete", args=[page.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    assert PageSettings.objects.count() == 1


def test_an_uploaded_logo_shows_on_the_public_page(
    client, page, settings, tmp_path, django_capture_on_commit_callbacks
):
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    settings.MEDIA_ROOT = tmp_path
    png = io.BytesIO()
    Image.new("RGB", (40, 20), "purple").save(png, "PNG")
    sign_in_staff(client, StaffFactory(groups=["Admins"]))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            change_url(page),
            settings_data(logo=SimpleUploadedFile("logo.png", png.getvalue(), "image/png")),
        )
    assert response.status_code == 302

    html = client.get("/").content.decode()
    logo_url = PageSettings.load().logo.url
    assert f'<img src="{logo_url}" alt="Acme status"' in html
    assert client.get(logo_url).status_code == 200


def test_a_file_that_is_not_an_image_is_refused_as_a_logo(client, page, settings, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.MEDIA_ROOT = tmp_path
    sign_in_staff(client, StaffFactory(groups=["Admins"]))
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    response = client.post(
        change_url(page), settings_data(logo=SimpleUploadedFile("logo.svg", svg, "image/svg+xml"))
    )
    assert response.status_code == 200
    assert "Upload a valid image" in response.content.decode()
    assert not PageSettings.load().logo

"""The 24-hour reports chart on the public page (PageSettings.show_reports_chart): an output
of its own, /reports/chart.svg (/de/reports/chart.svg … in each enabled language), rendered by
the beat task that persists the counts."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone, translation
from django.utils.translation import gettext

from components.reports import public_chart
from components.reports.models import ReportCount
from components.reports.public_chart import reports_chart_publish, stored_chart
from components.tasks import persist_report_counts
from statuspage.public.snapshots import store
from statuspage.services import page_settings_update
from tests.components.factories import ComponentFactory
from tests.statuspage.test_languages import set_languages
from tests.statuspage.test_public_outage import database_unreachable
from tests.statuspage.test_snapshots import unreachable_redis
from tests.statuspage.test_static_export import export

CHART = "/reports/chart.svg"


def show_chart(page, on=True):
    page_settings_update(page=page, changes={"show_reports_chart": on})


def reports(component, count, *, symptom="errors", ago=timedelta(0)):
    minute = (timezone.now() - ago).replace(second=0, microsecond=0)
    ReportCount.objects.create(component=component, symptom=symptom, minute=minute, count=count)


@pytest.fixture
def api(db, page):
    return ComponentFactory(name="API <b>v2</b>")


def test_with_the_setting_off_the_page_has_no_chart_and_there_is_none(client, api):
    reports(api, 3)
    persist_report_counts()
    assert CHART not in client.get("/").content.decode()
    assert client.get(CHART).status_code == 404
    assert stored_chart(language="en") is None


def test_with_the_setting_on_the_page_shows_the_chart_the_task_renders(client, page, api):
    show_chart(page)
    body = client.get("/").content.decode()
    assert f'<img class="reports-chart-image" src="{CHART}" alt="' in body
    assert "style=" not in body.split('class="reports-chart"', 1)[1].split("</section>")[0]

    reports(api, 3)
    reports(None, 1, symptom="", ago=timedelta(hours=2))
    persist_report_counts()
    response = client.get(CHART)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response["Cache-Control"] == "public, max-age=60"
    assert "Content-Security-Policy" in response  # the page's headers, as on every answer
    svg = response.content.decode()
    assert svg.startswith('<svg class="rc-chart"') and 'viewBox="0 0 640 ' in svg
    assert "4 reports in the last 24 hours. By component: API &lt;b&gt;v2&lt;/b&gt; 3 (75 %)" in svg
    assert "<b>" not in svg and "style=" not in svg and "<script" not in svg
    again = client.get(CHART, HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    assert client.head(CHART).status_code == 200
    assert client.post(CHART).status_code == 405


def test_the_task_writes_only_when_the_chart_changed_and_withdraws_it_when_off(page, api):
    show_chart(page)
    now = timezone.now()
    assert reports_chart_publish(now=now) is True  # the first: "no reports" until some come
    assert "No reports in the last 24 hours." in stored_chart(language="en").svg.decode()
    assert reports_chart_publish(now=now) is False
    reports(api, 2)
    assert reports_chart_publish(now=now) is True
    assert public_chart.chart_path(language="en").read_bytes() == stored_chart(language="en").svg
    show_chart(page, on=False)
    assert reports_chart_publish(now=now) is True
    assert (
        stored_chart(language="en") is None and not public_chart.chart_path(language="en").exists()
    )


def test_before_the_task_ran_the_chart_is_rendered_on_first_request(client, page, api):
    show_chart(page)
    reports(api, 5)
    response = client.get(CHART)
    assert response.status_code == 200 and "5 reports in the last 24 hours" in response.text
    assert stored_chart(language="en") is not None


def _seven_reports_charted(page):
    show_chart(page)
    reports(ComponentFactory(name="API"), 7)
    persist_report_counts()


@pytest.mark.django_db(transaction=True)
def test_served_while_postgresql_is_down(page, monkeypatch, django_assert_num_queries):
    _seven_reports_charted(page)
    client = Client(raise_request_exception=False)
    with django_assert_num_queries(0), database_unreachable(monkeypatch):
        response = client.get(CHART)
    assert response.status_code == 200 and "7 reports in the last 24 hours" in response.text


@pytest.mark.django_db(transaction=True)
def test_served_from_disk_while_redis_is_down_too(page, settings, monkeypatch):
    _seven_reports_charted(page)
    settings.CACHES = {"default": unreachable_redis()}
    client = Client(raise_request_exception=False)
    with database_unreachable(monkeypatch):
        response = client.get(CHART)
    assert response.status_code == 200 and "7 reports in the last 24 hours" in response.text


@pytest.mark.django_db(transaction=True)
def test_never_built_and_postgresql_down_is_a_placeholder_not_a_broken_image(page, monkeypatch):
    show_chart(page)
    cache.set(page.CACHE_KEY, page, None)  # the settings as a running site has them cached
    client = Client(raise_request_exception=False)
    with database_unreachable(monkeypatch):
        response = client.get(CHART)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response["Cache-Control"] == "no-store"
    assert "The reports chart cannot be shown right now." in response.text


def test_the_static_export_leaves_the_chart_out(page, api, tmp_path):
    show_chart(page)
    export(tmp_path / "copy")
    index = (tmp_path / "copy" / "index.html").read_text()
    assert "reports-chart" not in index and "chart.svg" not in index


# One chart per enabled language


def said(language, words):
    with translation.override(language):
        return gettext(words)


@pytest.mark.parametrize("language", ["de", "fr", "es", "ja", "pt-br"])
def test_each_enabled_language_has_its_own_chart_in_its_words(
    client, page, api, language, django_assert_num_queries
):
    show_chart(page)
    set_languages(enabled=("en", language))
    reports(api, 3)
    persist_report_counts()
    for words in ("By component", "By symptom"):
        assert said(language, words) != words  # the catalogue translates it: a real test
    english = client.get(CHART)
    with django_assert_num_queries(0):
        translated = client.get(f"/{language}{CHART}")
    assert english.status_code == translated.status_code == 200
    assert translated["Content-Type"] == "image/svg+xml"
    assert translated["Cache-Control"] == "public, max-age=60"
    for words in ("By component", "By symptom"):
        assert said(language, words) in translated.text
        assert words not in translated.text and words in english.text
    assert "API &lt;b&gt;v2&lt;/b&gt;" in translated.text and "<b>" not in translated.text
    assert translated["ETag"] != english["ETag"]
    assert stored_chart(language=language).svg == translated.content
    again = client.get(f"/{language}{CHART}", HTTP_IF_NONE_MATCH=translated["ETag"])
    assert again.status_code == 304 and again["ETag"] == translated["ETag"]
    # The English chart's validator is not this one's.
    assert client.get(f"/{language}{CHART}", HTTP_IF_NONE_MATCH=english["ETag"]).status_code == 200
    assert client.post(f"/{language}{CHART}").status_code == 405


def test_the_unprefixed_chart_is_the_default_language_s(client, page, api):
    show_chart(page)
    set_languages(default="de", enabled=("en", "de"))
    persist_report_counts()
    unprefixed, german = client.get(CHART), client.get(f"/de{CHART}")
    assert unprefixed.content == german.content
    assert said("de", "No reports in the last 24 hours.") in unprefixed.text
    assert "No reports in the last 24 hours." in client.get(f"/en{CHART}").text


def test_the_page_under_a_prefix_shows_that_language_s_chart(client, page, api):
    show_chart(page)
    set_languages(enabled=("en", "de"))
    assert f'class="reports-chart-image" src="/de{CHART}"' in client.get("/de/").text
    assert f'<a href="/de{CHART}">' in client.get("/de/").text
    assert f'class="reports-chart-image" src="{CHART}"' in client.get("/").text


@pytest.mark.parametrize(
    "path",
    [
        "/ja/reports/chart.svg",
        "/xx/reports/chart.svg",
        "/DE/reports/chart.svg",
        "/de-de/reports/chart.svg",
        "/de/de/reports/chart.svg",
        "/de/../ja/reports/chart.svg",
        "/de/reports/chart.svg/",
    ],
)
def test_a_disabled_or_unknown_language_s_chart_is_a_404(client, page, api, path):
    show_chart(page)
    set_languages(enabled=("en", "de"))
    persist_report_counts()
    assert client.get(path).status_code == 404
    assert client.post(path).status_code in (403, 404, 405)
    assert stored_chart(language="ja") is None


def test_before_the_task_ran_a_prefixed_chart_is_rendered_on_first_request(client, page, api):
    show_chart(page)
    set_languages(enabled=("en", "ja"))
    reports(api, 2)
    response = client.get(f"/ja{CHART}")
    assert response.status_code == 200 and said("ja", "By component") in response.text
    assert stored_chart(language="ja").svg == response.content
    assert stored_chart(language="en") is not None  # every language rendered in one go


def test_the_task_stores_each_language_only_when_it_changed(page, api):
    show_chart(page)
    set_languages(enabled=("en", "de"))
    now = timezone.now()
    assert reports_chart_publish(now=now) is True
    written = {
        lang: public_chart.chart_path(language=lang).stat().st_mtime_ns for lang in ("en", "de")
    }
    assert reports_chart_publish(now=now) is False
    assert written == {
        lang: public_chart.chart_path(language=lang).stat().st_mtime_ns for lang in ("en", "de")
    }
    reports(api, 2)
    assert reports_chart_publish(now=now) is True
    for language in ("en", "de"):
        assert (
            public_chart.chart_path(language=language).read_bytes()
            == stored_chart(language=language).svg
        )
        assert "2" in stored_chart(language=language).svg.decode()


def test_disabling_a_language_removes_its_copy(client, page, api):
    show_chart(page)
    set_languages(enabled=("en", "de", "fr"))
    persist_report_counts()
    assert public_chart.chart_path(language="fr").exists()
    set_languages(enabled=("en", "de"))
    assert reports_chart_publish(now=timezone.now()) is True
    assert stored_chart(language="fr") is None
    assert not public_chart.chart_path(language="fr").exists()
    assert cache.get(public_chart.CHART_KEY.format(language="fr")) is None
    assert stored_chart(language="de") is not None
    assert client.get(f"/fr{CHART}").status_code == 404
    assert client.get(f"/de{CHART}").status_code == 200


def test_turning_the_setting_off_withdraws_every_language_s_chart(client, page, api):
    show_chart(page)
    set_languages(enabled=("en", "de", "ja"))
    persist_report_counts()
    show_chart(page, on=False)
    persist_report_counts()
    for language in ("en", "de", "ja"):
        assert stored_chart(language=language) is None
        assert not public_chart.chart_path(language=language).exists()
        prefix = "" if language == "en" else f"/{language}"
        assert client.get(f"{prefix}{CHART}").status_code == 404
        assert "chart.svg" not in client.get(f"{prefix}/").text


@pytest.mark.django_db(transaction=True)
def test_each_language_is_served_from_disk_while_redis_and_postgresql_are_away(
    page, settings, monkeypatch
):
    show_chart(page)
    set_languages(enabled=("en", "de"))
    reports(ComponentFactory(name="API"), 7)
    persist_report_counts()
    store.refresh_known_outputs()  # the enabled languages, as the worker keeps them on disk
    settings.CACHES = {"default": unreachable_redis()}
    client = Client(raise_request_exception=False)
    with database_unreachable(monkeypatch):
        store.reset_memory()  # a fresh process: only the disk
        english, german = client.get(CHART), client.get(f"/de{CHART}")
    assert english.status_code == german.status_code == 200
    assert english.content == public_chart.chart_path(language="en").read_bytes()
    assert german.content == public_chart.chart_path(language="de").read_bytes()
    assert said("de", "By component") in german.text and "By component" in english.text

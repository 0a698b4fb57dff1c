"""The failover copy: where each output lands, how its links change, and the export command."""

import gzip
import posixpath
from html.parser import HTMLParser
from io import StringIO
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from components.models import Component
from incidents.services import incident_resolve
from statuspage.public.static_export import key_to_file, rewrite_links_for_export
from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import open_incident, schedule_maintenance

# key_to_file


@pytest.mark.parametrize(
    ("key", "file_path"),
    [
        ("/", "index.html"),
        ("/history/", "history/index.html"),
        ("/incidents/abc123def456/", "incidents/abc123def456/index.html"),
        ("/api/v2/summary.json", "api/v2/summary.json"),
        ("/api/v2/incidents/unresolved.json", "api/v2/incidents/unresolved.json"),
        ("/history.atom", "history.atom"),
        ("/history.rss", "history.rss"),
        ("/maintenance.ics", "maintenance.ics"),
        ("/badge.svg", "badge.svg"),
        ("/embed.js", "embed.js"),
        ("/components/abc123def456/badge.json", "components/abc123def456/badge.json"),
        ("/components/abc123def456/history.atom", "components/abc123def456/history.atom"),
    ],
)
def test_each_key_has_a_file_at_its_url_path(key, file_path):
    assert key_to_file(key) == file_path
    assert key_to_file(key, for_export=True) == file_path


def test_history_pages_with_a_query_have_no_served_file_but_an_exported_one():
    assert key_to_file("/history/?page=2") is None
    assert key_to_file("/history/?page=2", for_export=True) == "history/page/2/index.html"
    assert key_to_file("/history/?page=1", for_export=True) == "history/index.html"


@pytest.mark.parametrize(
    "key", ["/../etc/passwd", "/incidents/../../x/", "relative", "/badge.svg?x=1", "/history/?p=2"]
)
def test_it_refuses_keys_that_are_not_public_outputs(key):
    with pytest.raises(ValueError):
        key_to_file(key, for_export=True)


# rewrite_links_for_export


@pytest.mark.parametrize(
    ("file_path", "url", "expected"),
    [
        ("index.html", "/", "index.html"),
        ("index.html", "/history/", "history/index.html"),
        ("index.html", "/incidents/abc/", "incidents/abc/index.html"),
        ("index.html", "/static/css/beacon.css", "static/css/beacon.css"),
        ("index.html", "/history.atom", "history.atom"),
        ("history/index.html", "/", "../index.html"),
        ("history/index.html", "/history/?page=2", "page/2/index.html"),
        ("history/index.html", "/history/?page=1", "index.html"),
        ("history/index.html", "?page=2", "page/2/index.html"),
        ("history/page/2/index.html", "?page=1", "../../index.html"),
        ("history/page/2/index.html", "?page=3", "../3/index.html"),
        ("history/page/2/index.html", "/incidents/abc/", "../../../incidents/abc/index.html"),
        ("incidents/abc/index.html", "/", "../../index.html"),
        ("incidents/abc/index.html", "/incidents/abc/", "index.html"),
        ("incidents/abc/index.html", "/history/?page=2", "../../history/page/2/index.html"),
        ("incidents/abc/index.html", "/static/css/beacon.css", "../../static/css/beacon.css"),
        ("incidents/abc/index.html", "/media/logos/a%20b.png", "../../media/logos/a%20b.png"),
        ("incidents/abc/index.html", "/history/#june", "../../history/index.html#june"),
    ],
)
def test_root_relative_links_become_relative_to_the_file(file_path, url, expected):
    html = f'<a href="{url}">x</a>'

    assert rewrite_links_for_export(html, file_path=file_path) == f'<a href="{expected}">x</a>'


def test_src_and_hx_get_are_rewritten_too():
    html = (
        '<script src="/static/js/htmx.min.js" defer></script>'
        '<div id="status-body" hx-get="/incidents/abc/" hx-swap="outerHTML"></div>'
    )

    rewritten = rewrite_links_for_export(html, file_path="incidents/abc/index.html")

    assert 'src="../../static/js/htmx.min.js"' in rewritten
    assert 'hx-get="index.html"' in rewritten


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/",
        "http://example.com/status",
        "//cdn.example.com/x.js",
        "#main",
        "#i-ok",
        "mailto:ops@example.com",
        "data:image/svg+xml,%3Csvg%3E",
    ],
)
def test_absolute_links_fragments_and_mailto_are_left_alone(url):
    html = f'<a href="{url}">x</a><use href="{url}"></use>'

    assert rewrite_links_for_export(html, file_path="incidents/abc/index.html") == html


def test_text_that_looks_like_a_path_is_left_alone():
    html = "<p>See /history/ or href=/x for more.</p><code>GET /api/v2/summary.json</code>"

    assert rewrite_links_for_export(html, file_path="incidents/abc/index.html") == html


# The export command


# A 1×1 transparent PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@pytest.fixture
def small_page(page, settings, tmp_path):
    """A logo, groups and components, an open and a resolved incident, a maintenance, and 30
    incidents in all, so the history has two pages."""
    settings.MEDIA_ROOT = tmp_path / "media"
    page.logo = SimpleUploadedFile("logo.png", PNG, content_type="image/png")
    page.save()
    group = ComponentGroupFactory(name="Platform")
    api = ComponentFactory(name="API", group=group)
    ComponentFactory(name="Website")
    open_ = open_incident(name="API errors", component_statuses={api: "partial_outage"})
    resolved = []
    for number in range(29):
        incident = open_incident(name=f"Old incident {number}")
        incident_resolve(incident=incident)
        resolved.append(incident)
    maintenance = schedule_maintenance(name="Database upgrade")
    return {
        "components": list(Component.objects.all()),
        "incidents": [open_, *resolved, maintenance],
    }


def export(directory: Path, *args) -> str:
    out = StringIO()
    call_command("export_static", str(directory), *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_export_writes_every_public_output(small_page, tmp_path):
    target = tmp_path / "copy"

    summary = export(target)

    expected = [
        "index.html",
        "history/index.html",
        "history/page/2/index.html",
        "api/v2/summary.json",
        "api/v2/status.json",
        "api/v2/components.json",
        "api/v2/incidents.json",
        "api/v2/incidents/unresolved.json",
        "api/v2/scheduled-maintenances.json",
        "api/v2/scheduled-maintenances/upcoming.json",
        "api/v2/scheduled-maintenances/active.json",
        "history.atom",
        "history.rss",
        "maintenance.ics",
        "badge.svg",
        "badge.json",
        "embed.js",
        "robots.txt",
        "static/css/beacon.css",
        "static/js/htmx.min.js",
        "static/js/beacon.js",
        "404.html",
    ]
    expected += [f"incidents/{i.public_id}/index.html" for i in small_page["incidents"]]
    for component in small_page["components"]:
        expected += [
            f"components/{component.public_id}/{name}"
            for name in ("badge.svg", "badge.json", "history.atom", "history.rss")
        ]
    # Every enabled language's copy of the localized outputs; the API only once.
    localized = [name for name in expected if not name.startswith(("api/", "static/"))]
    localized = [n for n in localized if n not in ("robots.txt", "404.html")]
    expected += [f"{language}/{name}" for language in ("de", "pt-br") for name in localized]
    missing = [name for name in expected if not (target / name).is_file()]
    assert missing == []
    assert not (target / "history/page/3").exists()
    assert not (target / "de/api").exists()
    german = (target / "de/history/index.html").read_text()
    assert '<html lang="de">' in german
    assert 'href="page/2/index.html"' in german
    assert [p.name for p in (target / "media/branding").iterdir()][0].startswith("logo")
    assert "Exported" in summary and "files" in summary


@pytest.mark.django_db
def test_exported_files_have_content_and_gzip_siblings(small_page, tmp_path):
    target = tmp_path / "copy"

    export(target)

    files = [p for p in target.rglob("*") if p.is_file() and p.suffix != ".gz"]
    for path in files:
        sibling = path.with_name(path.name + ".gz")
        assert sibling.is_file(), f"{path} has no .gz"
        assert gzip.decompress(sibling.read_bytes()) == path.read_bytes(), path
    assert "API errors" in (target / "index.html").read_text()
    assert "Old incident 0" in (target / "history/page/2/index.html").read_text()
    assert b'"name": "API"' in (target / "api/v2/components.json").read_bytes().replace(
        b'"name":"API"', b'"name": "API"'
    )
    # JSON and feeds keep absolute URLs, made from the page URL setting.
    assert b"https://status.acme.test/incidents/" in (target / "history.atom").read_bytes()


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src", "hx-get") and value:
                self.urls.append(value)


def _is_external(url: str) -> bool:
    return url.startswith(("#", "//", "data:", "mailto:")) or bool(urlsplit(url).scheme)


@pytest.mark.django_db
def test_every_link_in_the_exported_html_resolves_to_an_exported_file(small_page, tmp_path):
    target = tmp_path / "copy"
    export(target)

    broken = []
    pages = sorted(target.rglob("*.html"))
    assert len(pages) >= 35
    for page_file in pages:
        relative_file = page_file.relative_to(target).as_posix()
        parser = _Links()
        parser.feed(page_file.read_text())
        for url in parser.urls:
            if _is_external(url):
                continue
            parts = urlsplit(url)
            assert not parts.query, f"{relative_file} links to {url} with a query"
            if url.startswith("/"):
                # Only 404.html, shown at any path: root-relative, to index.html files.
                assert relative_file == "404.html", f"{relative_file} links to {url}"
                resolved = unquote(parts.path).lstrip("/")
            else:
                directory = posixpath.dirname(relative_file)
                resolved = posixpath.normpath(posixpath.join(directory, unquote(parts.path)))
            if resolved.startswith("..") or not (target / resolved).is_file():
                broken.append(f"{relative_file} -> {url}")
    assert broken == []


@pytest.mark.django_db
def test_it_refuses_a_directory_that_is_not_empty(small_page, tmp_path):
    target = tmp_path / "copy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")

    with pytest.raises(CommandError, match="not empty"):
        export(target)

    assert [p.name for p in target.iterdir()] == ["keep.txt"]


@pytest.mark.django_db
def test_force_replaces_what_was_in_the_directory(small_page, tmp_path):
    target = tmp_path / "copy"
    target.mkdir()
    (target / "stale.html").write_text("old")

    export(target, "--force")

    assert not (target / "stale.html").exists()
    assert (target / "index.html").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".copy-")] == []

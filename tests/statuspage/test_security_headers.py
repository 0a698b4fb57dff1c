"""The locked-down page: a strict Content-Security-Policy and the other security headers on
every kind of answer (pages, snapshots, the WSGI fast path, API, feeds, badges, admin, errors),
no inline script or style anywhere Beacon renders HTML, HSTS and the HTTPS redirect behind a
TLS proxy, an HttpOnly CSRF cookie that never ends up in a shared snapshot, and
`check --deploy` clean with the README's production environment."""

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from django.test import Client
from django.urls import reverse

from components.models import CheckKind, ComponentStatus
from incidents.models import Subscriber
from incidents.notify.links import manage_token
from statuspage.lib.security_headers import CONTENT_SECURITY_POLICY, PERMISSIONS_POLICY
from statuspage.public.snapshots import build, store
from statuspage.public.snapshots.keys import public_keys
from tests.browser.steps import authenticator_code
from tests.components.factories import ComponentFactory, HealthCheckFactory
from tests.incidents.factories import (
    StaffFactory,
    open_incident,
    schedule_maintenance,
    sign_in_staff,
)
from tests.nginx import CONF as NGINX
from tests.nginx import shipped_nginx
from tests.statuspage.test_public_outage import database_unreachable
from tests.statuspage.test_snapshots import call_wsgi

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
ONE_YEAR = 365 * 24 * 3600


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        name, *values = part.split()
        assert name not in parsed, f"{name} twice in {policy!r}"
        parsed[name] = values
    return parsed


def manage_path(subscriber) -> str:
    return reverse("subscription-manage", args=[manage_token(subscriber)])


def assert_locked_down(response, where: str = "") -> None:
    where = where or getattr(response, "request", {}).get("PATH_INFO", "")
    assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, where
    assert response["X-Frame-Options"] == "DENY", where
    assert response["X-Content-Type-Options"] == "nosniff", where
    assert response["Referrer-Policy"] == "same-origin", where
    assert response["Cross-Origin-Opener-Policy"] == "same-origin", where
    assert response["Permissions-Policy"] == PERMISSIONS_POLICY, where


@pytest.fixture
def site(page, settings):
    """A page with something on it: a group, an open incident, a maintenance."""
    settings.ALLOWED_HOSTS = ["testserver", "localhost"]  # the test client's and Chromium's
    api = ComponentFactory(name="API")
    incident = open_incident(
        name="API errors",
        body="We are **investigating**.",
        component_statuses={api: ComponentStatus.MAJOR_OUTAGE},
    )
    schedule_maintenance(name="Database upgrade")
    return {"api": api, "incident": incident}


@pytest.fixture
def lenient():
    """A client that gets Beacon's error answers instead of the exception re-raised."""
    return Client(raise_request_exception=False)


# The policy itself


def test_the_policy_allows_only_this_origin_and_no_inline_code_or_eval():
    policy = directives(CONTENT_SECURITY_POLICY)

    assert policy["default-src"] == ["'none'"]
    for fetch in ("script-src", "style-src", "connect-src", "font-src"):
        assert policy[fetch] == ["'self'"], fetch
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    for unsafe in ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*", "https:"):
        assert unsafe not in CONTENT_SECURITY_POLICY


# Every kind of answer carries the headers


PUBLIC_OUTPUTS = [
    "/",
    "/history/",
    "/history/?page=1",
    "/history.atom",
    "/history.rss",
    "/maintenance.ics",
    "/badge.svg",
    "/badge.json",
    "/embed.js",
    "/robots.txt",
    "/api/v2/summary.json",
    "/api/v2/incidents/unresolved.json",
]


@pytest.mark.parametrize("url", PUBLIC_OUTPUTS)
def test_public_outputs_carry_the_headers_when_built_and_when_served_from_the_snapshot(
    client, site, url
):
    built = client.get(url)
    served = client.get(url)  # from the snapshot, past every other middleware
    revalidated = client.get(url, HTTP_IF_NONE_MATCH=served["ETag"])

    assert (built.status_code, served.status_code, revalidated.status_code) == (200, 200, 304)
    for response in (built, served, revalidated):
        assert_locked_down(response, url)


def test_incident_and_component_outputs_carry_the_headers(client, site):
    api = site["api"]
    urls = [
        reverse("incident-detail", args=[site["incident"].public_id]),
        f"/components/{api.public_id}/badge.svg",
        f"/components/{api.public_id}/badge.json",
        f"/components/{api.public_id}/history.atom",
    ]
    for url in urls:
        for _ in range(2):
            response = client.get(url)
            assert response.status_code == 200, url
            assert_locked_down(response, url)


def test_the_wsgi_fast_path_serves_the_same_headers(client, site):
    for url in ("/", "/api/v2/summary.json", "/badge.svg"):
        client.get(url)  # now a current snapshot in this process's memory
        answer = call_wsgi(url)
        assert answer["status"] == "200 OK"
        assert_locked_down(answer["headers"], url)
        assert "Strict-Transport-Security" not in answer["headers"]


def test_a_snapshot_stored_by_an_older_version_is_served_with_todays_headers(client, site):
    client.get("/")
    stored = store.load("/")
    outdated = (("Content-Security-Policy", "script-src *"), ("X-Frame-Options", "SAMEORIGIN"))
    store.store(replace(stored, headers=stored.headers + outdated))

    for response in (client.get("/"), call_wsgi("/")["headers"]):
        assert_locked_down(response, "/")
    assert call_wsgi("/")["headers"]["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


@pytest.mark.parametrize(
    "url",
    [
        "/nothing/here/",
        "/incidents/doesnotexist/",
        "/history/?page=999",
        "/components/nope/badge.svg",
        "/api/v2/nope.json",
        "/static/nope.css",
    ],
)
def test_not_found_answers_carry_the_headers(client, site, url):
    for _ in range(2):
        response = client.get(url)
        assert response.status_code == 404, url
        assert_locked_down(response, url)


@pytest.mark.django_db  # the Admins group of the key's owner comes from a data migration
def test_api_v1_answers_and_errors_carry_the_headers(client, site, manage_api):
    answers = [
        manage_api("get", "/components"),
        manage_api("get", "/incidents/nope"),  # 404 JSON
        manage_api("post", "/incidents", raw="{not json"),  # 400 JSON
        client.get("/api/v1/pages/x/components"),  # no key: 401 JSON
        client.get("/api/v1/nowhere"),
        client.get("/api/v1/pages/x\x00/components"),  # refused before the view: 400
        client.get("/api/v1/openapi.json"),
        client.get("/api/v1/docs"),
    ]
    statuses = [response.status_code for response in answers]
    assert statuses == [200, 404, 400, 401, 404, 400, 200, 200]
    for response in answers:
        assert_locked_down(response)


def test_staff_pages_carry_the_headers(client, site):
    check = HealthCheckFactory(component=site["api"])
    sign_in_staff(client, StaffFactory(is_superuser=True))
    urls = [
        "/admin/",
        "/admin/incidents/incident/",
        "/admin/incidents/incident/add/",
        reverse("admin:incidents_incident_change", args=[site["incident"].pk]),
        reverse("admin:components_healthcheck_change", args=[check.pk]),
        "/admin/incidents/subscriber/",
        "/admin/password_change/",
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_locked_down(response, url)
    anonymous = Client()
    for response in (anonymous.get("/admin/"), anonymous.get("/admin/login/")):
        assert_locked_down(response, "login")


def test_subscription_pages_carry_the_headers(client, site):
    response = client.post("/subscribe/", {"email": "reader@example.test"})
    assert response.status_code == 200
    subscriber = Subscriber.objects.get()
    for response in (
        client.get("/subscribe/"),
        client.get(manage_path(subscriber)),
        client.post("/subscribe/", {"email": "not an address"}),
    ):
        assert_locked_down(response)


def test_error_pages_carry_the_headers(site, lenient, monkeypatch, settings):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    with monkeypatch.context() as patch:
        patch.setattr("statuspage.public.views.selectors.build_status_page", broken)
        patch.setattr("statuspage.public.api_v2.component_tree", broken)
        bug_page, bug_json = lenient.get("/"), lenient.get("/api/v2/summary.json")
    wrong_host = lenient.get("/", HTTP_HOST="evil.example")
    wrong_host_staff = lenient.get("/admin/", HTTP_HOST="evil.example")
    lenient.cookies["sessionid"] = "0123456789abcdefghijklmnopqrstuv"  # a signed-in browser
    with database_unreachable(monkeypatch):
        outage_page = lenient.get("/history/?page=7")
        outage_api = lenient.get("/api/v1/pages/x/incidents", HTTP_AUTHORIZATION="OAuth 0123")
        outage_staff = lenient.get("/admin/")

    expected = [500, 500, 400, 400, 503, 503, 503]
    answers = [bug_page, bug_json, wrong_host, wrong_host_staff, outage_page, outage_api]
    answers.append(outage_staff)
    assert [response.status_code for response in answers] == expected
    for response in answers:
        assert_locked_down(response)


# No inline script or style in any HTML Beacon renders for a browser


class InlineCode(HTMLParser):
    """Collects every piece of HTML that a strict policy would block (or that needs a nonce)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script: str | None = None

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        for name, value in attrs:
            if name == "style" or name.startswith("on") or name.startswith("hx-on"):
                self.found.append(f"<{tag} {name}={value!r}>")
            if name in ("href", "src", "action", "formaction") and (
                value or ""
            ).strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}={value!r}>")
            if name in ("hx-vals", "hx-vars") and "js:" in (value or ""):
                self.found.append(f"<{tag} {name}={value!r}>")
            if name == "hx-trigger" and "[" in (value or ""):
                self.found.append(f"<{tag} hx-trigger={value!r}> (a filter htmx evaluates)")
        if tag == "style":
            self.found.append("<style>")
        if tag == "script" and "src" not in names and names.get("type") != "application/json":
            self.found.append(f"<script {names}> without src")
        if tag == "meta" and names.get("name") == "htmx-config":
            config = json.loads(names["content"])
            if config.get("allowEval", True) or config.get("includeIndicatorStyles", True):
                self.found.append(f"htmx-config {config}")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


def test_the_inline_code_detector_finds_what_it_looks_for():
    hostile = [
        "<style>p{}</style>",
        "<p style='color:red'>",
        "<script>alert(1)</script>",
        "<script type=module>x()</script>",
        "<button onclick=x()>",
        "<body onload='x()'>",
        "<div hx-on:click='x()'>",
        "<div hx-on::after-request='x()'>",
        "<a href='javascript:alert(1)'>",
        "<a href=' JavaScript:alert(1)'>",
        "<form action='javascript:x()'>",
        "<div hx-vals='js:{a: x()}'>",
        '<div hx-trigger="every 30s [document.hidden]">',
        """<meta name="htmx-config" content='{"historyEnabled": false}'>""",
    ]
    for html in hostile:
        assert inline_code(html), html
    assert inline_code('<script type="application/json" id="x">{"a": 1}</script>') == []
    assert inline_code('<script src="/static/js/beacon.js" defer></script>') == []


def test_public_pages_have_no_inline_script_or_style(client, site, settings):
    # Hostile text where staff may write it: none of it may become inline code.
    hostile = (
        "<style>body{display:none}</style><script>alert(1)</script>"
        "<p style='color:red' onclick='x()'>a</p> [x](javascript:alert(1)) "
        '<img src=x onerror="alert(1)"> <div hx-on:click="alert(1)">b</div>'
    )
    page = site["incident"]
    open_incident(name="<style>x</style>", body=hostile, component_statuses={})
    from statuspage.models import PageSettings

    settings_row = PageSettings.load()
    settings_row.footer_text = hostile
    settings_row.save()

    response = client.post("/subscribe/", {"email": "reader@example.test"})
    subscriber = Subscriber.objects.get()
    htmls = {
        url: client.get(url).content.decode()
        for url in [
            *public_keys(everything=True),
            "/subscribe/",
            manage_path(subscriber),
            "/nothing/here/",
        ]
        if url.endswith("/") or "?page=" in url
    }
    htmls["subscribe answer"] = response.content.decode()
    htmls["subscribe htmx"] = client.get("/subscribe/", HTTP_HX_REQUEST="true").content.decode()
    assert reverse("incident-detail", args=[page.public_id]) in htmls
    assert len(htmls) >= 8
    for url, html in htmls.items():
        assert "<html" in html or url.startswith("subscribe"), url
        assert inline_code(html) == [], url


def test_error_pages_have_no_inline_script_or_style(site, lenient, monkeypatch):
    monkeypatch.setattr("statuspage.public.views.selectors.build_status_page", lambda: 1 / 0)
    bug = lenient.get("/")
    wrong_host = lenient.get("/", HTTP_HOST="evil.example")
    monkeypatch.undo()
    with database_unreachable(monkeypatch):
        outage = lenient.get("/history/?page=7")
    for response in (bug, wrong_host, outage):
        html = response.content.decode()
        assert "<html" in html, response.status_code
        assert inline_code(html) == [], response.status_code
        assert '<link rel="stylesheet" href="/static/css/error.css">' in html


def test_error_pages_render_without_a_collected_stylesheet(
    site, lenient, settings, tmp_path, monkeypatch
):
    """collectstatic not run since an upgrade: the error page still answers, styled or not."""
    settings.STATIC_ROOT = tmp_path / "empty"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    monkeypatch.setattr("statuspage.public.views.selectors.build_status_page", lambda: 1 / 0)
    answers = [lenient.get("/", HTTP_HOST="evil.example"), lenient.get("/")]
    assert [response.status_code for response in answers] == [400, 500]
    for response in answers:
        assert '<link rel="stylesheet" href="/static/css/error.css">' in response.content.decode()
        assert_locked_down(response)


def test_staff_pages_have_no_inline_script_or_style_of_ours(client, site, settings):
    """Beacon's own admin templates; Django's are checked in the browser (test below)."""
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True
    check = HealthCheckFactory(component=site["api"], kind=CheckKind.HEARTBEAT)
    sign_in_staff(client, StaffFactory(is_superuser=True))
    urls = [
        "/admin/incidents/incident/add/",
        reverse("admin:incidents_incident_change", args=[site["incident"].pk]),
        reverse("admin:components_healthcheck_change", args=[check.pk]),
        reverse("admin:components_component_change", args=[site["api"].pk]),
        "/admin/incidents/subscriber/",
        "/admin/incidents/subscriber/add/",
        "/admin/incidents/subscriber/import/",
        "/admin/incidents/notificationevent/",
        "/admin/incidents/incidentdraft/",
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert inline_code(response.content.decode()) == [], url


# HSTS and the HTTPS redirect behind a TLS proxy


@pytest.fixture
def behind_tls_proxy(settings, monkeypatch):
    """What BEHIND_TLS_PROXY=true sets (the defaults themselves: test_deploy_defaults…)."""
    # Middleware reads these settings when it is loaded, as a process starts: load it again
    # for the renderer and for the WSGI application.
    from django.core.wsgi import get_wsgi_application

    from statuspage import wsgi

    monkeypatch.setattr(build, "_handler_instance", None)
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = ONE_YEAR
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    monkeypatch.setattr(wsgi, "django_application", get_wsgi_application())


HTTPS = {"HTTP_X_FORWARDED_PROTO": "https"}
HSTS = f"max-age={ONE_YEAR}; includeSubDomains"


def test_behind_a_tls_proxy_every_answer_over_https_carries_hsts(client, site, behind_tls_proxy):
    client.get("/admin/login/", **HTTPS)
    answers = {
        url: [client.get(url, **HTTPS) for _ in range(2)]  # built, then from the snapshot
        for url in ["/", "/api/v2/summary.json", "/badge.svg", "/nothing/here/", "/admin/login/"]
    }
    answers["fast path"] = [call_wsgi("/", x_forwarded_proto="https")["headers"]]
    for url, responses in answers.items():
        for response in responses:
            assert response["Strict-Transport-Security"] == HSTS, url
            assert_locked_down(response, url)


@pytest.mark.parametrize(
    "url", ["/", "/history/?page=1", "/api/v2/summary.json", "/badge.svg", "/admin/", "/subscribe/"]
)
def test_behind_a_tls_proxy_plain_http_is_redirected_even_with_a_snapshot_ready(
    client, site, behind_tls_proxy, url
):
    assert client.get(url, **HTTPS).status_code in (200, 302)  # the snapshot exists now
    for proto in ({"HTTP_X_FORWARDED_PROTO": "http"}, {}):
        response = client.get(url, **proto)
        assert response.status_code == 301, (url, proto)
        assert response["Location"] == f"https://testserver{url}"
        assert "Strict-Transport-Security" not in response  # meaningless over plain HTTP
        assert_locked_down(response, url)
    fast = call_wsgi(url.partition("?")[0], query=url.partition("?")[2])
    assert fast["status"].startswith("301"), url


def test_the_metrics_scraper_on_plain_http_is_not_redirected(client, site, behind_tls_proxy):
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")


def test_snapshots_rebuilt_by_the_worker_behind_a_tls_proxy_are_pages_not_redirects(
    site, behind_tls_proxy
):
    for key in public_keys():
        snapshot = build.render_key(key)
        assert snapshot.status == 200, key
        assert not any(name == "Location" for name, _ in snapshot.headers)


def test_without_a_tls_proxy_there_is_no_hsts_and_no_redirect(client, site, settings):
    assert settings.SECURE_SSL_REDIRECT is False and settings.SECURE_HSTS_SECONDS == 0
    for url in ["/", "/", "/admin/login/"]:
        # A forged X-Forwarded-Proto is not trusted without the proxy.
        response = client.get(url, HTTP_X_FORWARDED_PROTO="https")
        assert response.status_code == 200
        assert "Strict-Transport-Security" not in response
    assert "Strict-Transport-Security" not in call_wsgi("/", x_forwarded_proto="https")["headers"]


# The CSRF cookie: HttpOnly, and never baked into a snapshot


def test_the_csrf_cookie_is_httponly_and_forms_still_post(client, site):
    form = client.get("/subscribe/")
    cookie = form.cookies["csrftoken"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"

    strict = Client(enforce_csrf_checks=True)
    strict.get("/subscribe/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.content.decode())
    assert token
    without = strict.post("/subscribe/", {"email": "a@example.test"})
    assert without.status_code == 403
    page = strict.get("/subscribe/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    with_token = strict.post(
        "/subscribe/",
        {"email": "a@example.test", "csrfmiddlewaretoken": token},
        HTTP_HX_REQUEST="true",
    )
    assert with_token.status_code == 200
    assert "Check your inbox" in with_token.content.decode()


def test_no_snapshot_carries_a_csrf_token_or_a_cookie_whoever_asked_first(site, settings):
    staff = Client()
    sign_in_staff(staff, StaffFactory(is_superuser=True))
    staff.get("/subscribe/")  # holds a CSRF cookie and a session
    keys = public_keys(everything=True)
    first = {key: staff.get(key) for key in keys}  # the signed-in visitor builds them all
    anonymous = Client()
    for key in keys:
        shared = anonymous.get(key)
        assert shared.content == first[key].content, key
        for response in (first[key], shared):
            assert not response.cookies, key
            assert "Cookie" not in response.get("Vary", ""), key
            body = response.content.decode(errors="replace")
            assert "csrfmiddlewaretoken" not in body, key
            assert staff.cookies["csrftoken"].value not in body, key
            assert "csrf" not in body.lower(), key
        snapshot = store.load(key)
        assert not any(name.lower() == "set-cookie" for name, _ in snapshot.headers), key


# `check --deploy` with the README's production environment


def readme_production_environment() -> dict[str, str]:
    """The variables of the README's `.env` example, made the way the README makes them."""
    readme = (ROOT / "README.md").read_text()
    heredoc = re.search(r"cat > \.env <<EOF\n(.*?)\nEOF\n", readme, flags=re.S)
    assert heredoc, "the README's production .env example"
    made = subprocess.run(
        ["bash", "-c", f"cat <<EOF\n{heredoc.group(1)}\nEOF"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    environment = dict(line.split("=", 1) for line in made.splitlines() if "=" in line)
    assert {"SECRET_KEY", "ALLOWED_HOSTS", "BEHIND_TLS_PROXY"} <= set(environment)
    return environment


def run_check_deploy(environment: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    keep = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**keep, "BEACON_VAR_DIR": str(tmp_path), **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )


WEAKENED = [
    ({"BEHIND_TLS_PROXY": "false"}, "security.W004"),  # no HSTS, no redirect
    ({"HSTS_SECONDS": "0"}, "security.W004"),
    ({"SECURE_SSL_REDIRECT": "false"}, "security.W008"),
    ({"SECURE_COOKIES": "false"}, "security.W012"),
    ({"HSTS_INCLUDE_SUBDOMAINS": "false"}, "security.W005"),
    ({"SECRET_KEY": "too-short"}, "security.W009"),
]


@pytest.fixture(scope="module")
def check_deploy_runs(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """`check --deploy` with the README's environment and with each weakening of it, run side
    by side, one per core: each is a Django start of its own."""
    readme = readme_production_environment()
    environments = {"readme": readme} | {
        json.dumps(change): {**readme, **change} for change, _ in WEAKENED
    }
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        runs = {
            name: pool.submit(run_check_deploy, environment, tmp_path_factory.mktemp("var"))
            for name, environment in environments.items()
        }
        return {name: run.result() for name, run in runs.items()}


@pytest.mark.django_db(transaction=False)
def test_check_deploy_is_clean_with_the_readmes_production_environment(check_deploy_runs):
    result = check_deploy_runs["readme"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize(("change", "warning"), WEAKENED)
def test_check_deploy_fails_when_the_environment_weakens_it(check_deploy_runs, change, warning):
    result = check_deploy_runs[json.dumps(change)]
    assert result.returncode != 0
    assert warning in result.stdout + result.stderr


@pytest.mark.django_db(transaction=False)
def test_deploy_defaults_follow_behind_tls_proxy(tmp_path):
    script = (
        "from django.conf import settings as s; print(s.SECURE_SSL_REDIRECT, "
        "s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.CSRF_COOKIE_HTTPONLY)"
    )

    def shown(**environment):
        keep = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
        return (
            subprocess.run(
                [sys.executable, "manage.py", "shell", "-c", script],
                cwd=ROOT,
                env={**keep, "BEACON_VAR_DIR": str(tmp_path), **environment},
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.splitlines()[-1]
            .split()
        )  # after the shell's "objects imported" line

    assert shown(BEHIND_TLS_PROXY="true") == ["True", str(ONE_YEAR), "True", "True", "True"]
    # docker-compose passes an unset SECURE_COOKIES on as "": the default still holds.
    unset = dict.fromkeys(("SECURE_COOKIES", "SECURE_SSL_REDIRECT", "HSTS_SECONDS"), "")
    assert shown(BEHIND_TLS_PROXY="true", **unset) == shown(BEHIND_TLS_PROXY="1")
    assert shown() == ["False", "0", "False", "False", "True"]
    assert shown(BEHIND_TLS_PROXY="true", HSTS_SECONDS="600", SECURE_COOKIES="false")[1:4] == [
        "600",
        "False",
        "False",
    ]


# In Chromium: no page Beacon shows a visitor or staff member trips the policy


RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(
    `${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`
  );
});
document.addEventListener("htmx:evalDisallowedError", (e) => {
  window.__violations.push(`htmx wanted eval on ${e.target.outerHTML.slice(0, 120)}`);
});
"""


@pytest.fixture
def watched(browser):
    """A browser tab that records every policy violation, on any page it shows."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(RECORD_VIOLATIONS)
    tab = context.new_page()
    reported: list[str] = []
    tab.on(
        "console",
        lambda m: reported.append(m.text) if "Content Security Policy" in m.text else None,
    )
    tab.on("pageerror", lambda error: reported.append(f"pageerror: {error}"))

    def violations() -> list[str]:
        return tab.evaluate("window.__violations") + reported

    tab.violations = violations
    yield tab
    context.close()


def visit(tab, url: str, status: int = 200) -> None:
    response = tab.goto(url)
    tab.wait_for_load_state("load")
    assert response.status == status, url
    assert tab.violations() == [], url


def test_visitors_pages_and_their_htmx_trip_no_policy(live_server, watched, site):
    base = live_server.url
    visit(watched, base + "/")
    # The live refresh (htmx, with its visibility check in beacon.js) and the subscribe form.
    with watched.expect_response(lambda response: response.url == base + "/"):
        watched.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    watched.get_by_role("link", name="Subscribe to updates").click()
    watched.get_by_label("Email address").fill("reader@example.test")
    watched.get_by_role("button", name="Subscribe").click()
    watched.get_by_text("Check your inbox").wait_for()
    assert watched.violations() == []

    visit(watched, base + reverse("incident-detail", args=[site["incident"].public_id]))
    visit(watched, base + "/history/")
    visit(watched, base + "/nothing/here/", status=404)
    visit(watched, base + "/subscribe/")

    subscriber = Subscriber.objects.get()
    visit(watched, base + manage_path(subscriber))
    watched.get_by_label("API").check()
    watched.get_by_role("button", name="Save").click()
    watched.get_by_text("Saved.").wait_for()
    assert list(subscriber.components.all()) == [site["api"]]
    assert watched.violations() == []


def test_staff_pages_trip_no_policy(live_server, watched, site, settings, httpserver):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True
    httpserver.expect_request("/health").respond_with_data("ok")
    base = live_server.url
    api = site["api"]
    check = HealthCheckFactory(component=api, url=httpserver.url_for("/health"))
    heartbeat = HealthCheckFactory(component=api, kind=CheckKind.HEARTBEAT)
    staff = StaffFactory(is_superuser=True)
    staff.set_password("a long and lovely password")
    staff.save()

    # Django's own login page, then signing in through it (the CSRF token is a form field).
    visit(watched, base + "/admin/login/")
    watched.get_by_label("Username").fill(staff.username)
    watched.get_by_label("Password").fill("a long and lovely password")
    watched.get_by_role("button", name="Log in").click()
    # The first sign-in sets up an authenticator app: the QR code, the code, backup codes.
    watched.locator("#totp-secret").wait_for()
    secret = watched.locator("#totp-secret").inner_text()
    watched.locator("#id_code").fill(authenticator_code(secret))
    watched.get_by_role("button", name="Confirm").click()
    watched.get_by_role("link", name="I have kept them: continue").click()
    watched.wait_for_url(base + "/admin/")
    assert watched.violations() == []

    pages = [
        "/admin/",
        "/admin/incidents/incident/",
        "/admin/incidents/incident/?status__exact=investigating&impact__exact=major",
        "/admin/incidents/incident/add/",
        reverse("admin:incidents_incident_change", args=[site["incident"].pk]),
        reverse("admin:incidents_incident_delete", args=[site["incident"].pk]),
        "/admin/incidents/scheduledmaintenance/add/",
        "/admin/components/component/",
        reverse("admin:components_component_change", args=[api.pk]),
        "/admin/components/component/add/?_to_field=id&_popup=1",
        reverse("admin:components_healthcheck_change", args=[heartbeat.pk]),
        "/admin/incidents/subscriber/",
        "/admin/incidents/subscriber/import/",
        "/admin/auth/user/",
        reverse("admin:auth_user_change", args=[staff.pk]),
        reverse("admin:auth_user_password_change", args=[staff.pk]),
        "/admin/password_change/",
        "/admin/statuspage/pagesettings/",
        "/admin/statuspage/apikey/add/",
        "/admin/statuspage/auditevent/",
        "/admin/axes/accessattempt/",
        reverse("admin:two_factor_manage"),  # with the passkey button's scripts
        reverse("admin:two_factor_set_up"),  # another app: its QR code
        "/api/v1/docs",
    ]
    for path in pages:
        visit(watched, base + path)

    # The date and time widgets (calendar and clock pop-ups, built by Django's JavaScript).
    visit(watched, base + "/admin/incidents/scheduledmaintenance/add/")
    watched.locator("#calendarlink0").click()
    watched.locator("#calendarbox0").wait_for(state="visible")
    watched.locator("#calendarbox0 .calendar-cancel a").click()
    watched.locator("#clocklink0").click()
    watched.locator("#clockbox0").wait_for(state="visible")
    # Swagger UI draws the management API from its JSON description.
    visit(watched, base + "/api/v1/docs")
    watched.locator(".swagger-ui .opblock").first.wait_for()
    # htmx in the admin: Run now, and the copy button of a heartbeat.
    visit(watched, base + reverse("admin:components_healthcheck_change", args=[check.pk]))
    watched.get_by_role("button", name="Run now").click()
    watched.locator("#run-result .run-outcome").wait_for()
    visit(watched, base + reverse("admin:components_healthcheck_change", args=[heartbeat.pk]))
    watched.get_by_role("button", name="Copy").click()
    watched.get_by_role("button", name="Copied").wait_for()
    assert watched.violations() == []


# nginx serves the hot outputs from files: with the same headers


def test_the_shipped_nginx_config_sends_beacons_policy_wherever_it_answers_itself():
    conf = NGINX.read_text()
    policies = re.findall(r'add_header Content-Security-Policy "([^"]*)" always;', conf)
    assert len(policies) >= 7
    media = re.search(r"location /media/ \{(.*?)\n    \}", conf, flags=re.S).group(1)
    for policy in policies:
        if policy in media:
            continue  # uploads: sandboxed, no script at all
        assert policy == CONTENT_SECURITY_POLICY
    for location in re.findall(r"\n    location [^{]*\{(.*?)\n    \}", conf, flags=re.S):
        if "add_header" in location and "X-Content-Type-Options" in location:
            assert "Content-Security-Policy" in location, location


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed")
def test_nginx_serves_snapshot_files_with_the_policy(tmp_path):
    files = tmp_path / "files"
    (files / "api/v2").mkdir(parents=True)
    (files / "index.html").write_text("<!doctype html><title>Status</title>")
    (files / "api/v2/summary.json").write_text("{}")
    with shipped_nginx(tmp_path, files=files) as base:
        paths = ("/", "/api/v2/summary.json", "/admin/", "/history/")
        answers = {path: httpx.get(base + path) for path in paths}

    assert [answers[p].status_code for p in answers] == [200, 200, 503, 503]
    for path, response in answers.items():
        assert_locked_down(response.headers, path)
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP

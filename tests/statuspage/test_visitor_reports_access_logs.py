"""The access logs of gunicorn and of nginx (as shipped) name neither the address nor the
user agent of a visitor's problem report (docs/reports.md)."""

import os
import shutil
import sys
from pathlib import Path

import httpx
import pytest

from tests.components.factories import ComponentFactory
from tests.nginx import free_port, shipped_nginx
from tests.processes import database_env, process, wait_until_answering

AGENT = "ReportLogBrowser/9.1"


@pytest.mark.django_db(transaction=True)
def test_gunicorns_access_log_keeps_no_reporter(tmp_path, settings, page):
    api = ComponentFactory(name="API")
    port = free_port()
    env = {
        **os.environ,
        **database_env(),
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECRET_KEY": "test-only-" + "x" * 50,
        "CACHE_KEY_PREFIX": settings.CACHES["default"].get("KEY_PREFIX") or "beacon",
        # Snapshots of its own: none that an earlier run left on disk.
        "BEACON_VAR_DIR": str(tmp_path / "var"),
    }
    log = tmp_path / "gunicorn.log"
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    command = [gunicorn, "-c", "python:statuspage.gunicorn_conf", "statuspage.wsgi"]
    base = f"http://127.0.0.1:{port}"
    with process([*command, "--bind", f"127.0.0.1:{port}", "--workers", "1"], env, log):
        wait_until_answering(f"{base}/robots.txt")
        headers = {"User-Agent": AGENT, "X-Forwarded-For": "203.0.113.5"}
        other = httpx.get(f"{base}/robots.txt", headers=headers)
        # As htmx sends it: the answer is the control alone (no collectstatic manifest here).
        reported = httpx.post(
            f"{base}/reports/",
            data={"components": api.public_id},
            headers={**headers, "HX-Request": "true"},
        )
        # From a page in another language: its form posts under the prefix.
        reported_in_german = httpx.post(
            f"{base}/de/reports/",
            data={"components": api.public_id},
            headers={**headers, "HX-Request": "true", "X-Forwarded-For": "203.0.113.6"},
        )

    assert (other.status_code, reported.status_code) == (200, 202)
    assert reported_in_german.status_code == 202
    lines = log.read_text().splitlines()
    report_line, german_line = [line for line in lines if "/reports/" in line]
    assert '"POST /reports/ HTTP/1.1" 202' in report_line
    assert '"POST /de/reports/ HTTP/1.1" 202' in german_line
    for line in (report_line, german_line):
        assert line.startswith("- ")
        assert "127.0.0.1" not in line and AGENT not in line
    # Other requests are logged as before.
    (robots,) = [line for line in lines if "GET /robots.txt" in line and AGENT in line]
    assert robots.startswith("127.0.0.1 ")


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed")
def test_nginxs_access_log_keeps_no_reporter(tmp_path):
    with shipped_nginx(tmp_path) as base:
        for path in ("/reports/", "/pt-br/reports/"):
            httpx.post(f"{base}{path}", data={"components": "other"}, headers={"User-Agent": AGENT})
        httpx.get(f"{base}/history/", headers={"User-Agent": AGENT})

    access = (tmp_path / "access.log").read_text().splitlines()
    report_lines = [line for line in access if "/reports/" in line]
    assert len(report_lines) == 2
    for report_line in report_lines:
        assert report_line.startswith("- ") and AGENT not in report_line
    (history,) = [line for line in access if "/history/" in line]
    assert history.startswith("127.0.0.1 ") and AGENT in history

"""An alert integration's secret URL never reaches a log line, and every line about an alert
request names the request's id (echoed to the sender as X-Request-ID)."""

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.test import Client

from components.alerts import services as alert_services
from components.alerts import views as alert_views
from components.alerts.models import AlertIntegration, AlertKind
from statuspage.lib import request_log
from tests.components.factories import ComponentFactory
from tests.nginx import shipped_nginx
from tests.processes import database_env

FIRING = {"id": "job", "status": "firing", "labels": {"component": "API"}}


def post(path, body, **headers):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Client().post(path, data, content_type="application/json", headers=headers)


def lines(caplog) -> list[str]:
    formatter = request_log.Formatter("%(levelname)s %(name)s %(message)s")
    return [formatter.format(record) for record in caplog.records]


@pytest.fixture
def integration(db):
    ComponentFactory(name="API")
    return AlertIntegration.objects.create(name="Cron", kind=AlertKind.GENERIC)


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def _assert_masked_and_named(logs, token: str, request_id: str) -> None:
    text = "\n".join(lines(logs))
    assert token not in text
    about = [record for record in logs.records if record.request_id == request_id]
    assert about, text
    for record in about:
        assert f"request_id={request_id}" in request_log.Formatter().format(record)


@pytest.mark.parametrize(
    ("body", "status"),
    [(FIRING, 200), (b"{not json", 400), ({"status": "firing"}, 400), (b"\x00", 400)],
)
def test_deliveries_log_their_request_id_and_never_the_token(integration, logs, body, status):
    response = post(integration.path, body)

    assert response.status_code == status
    request_id = response["X-Request-ID"]
    assert len(request_id) >= 16
    _assert_masked_and_named(logs, integration.token, request_id)
    if status == 400:
        assert "/integrations/generic/****/" in "\n".join(lines(logs))  # django.request


def test_a_wrong_token_a_wrong_method_and_the_rate_limit_are_logged_masked(
    integration, logs, monkeypatch
):
    monkeypatch.setattr(alert_views, "RATE_LIMIT_PER_MINUTE", 1)
    answers = [
        post("/integrations/generic/guessed-Token-123/", FIRING),
        Client().get(integration.path),
        post(integration.path, FIRING),
        post(integration.path, FIRING),
    ]

    assert [a.status_code for a in answers] == [404, 405, 200, 429]
    text = "\n".join(lines(logs))
    assert integration.token not in text and "guessed-Token-123" not in text
    assert "Method Not Allowed (GET): /integrations/generic/****/" in text
    # A 404 writes no warning of its own (the access log has it); the others name their id.
    assert "guessed" not in text
    for answer in answers[1:]:
        assert f"request_id={answer['X-Request-ID']}" in text


def test_a_failure_answers_json_500_and_logs_the_traceback_masked(integration, logs, monkeypatch):
    def broken(*, integration, body, now=None):
        raise RuntimeError(f"lost the database while at {integration.path}")

    monkeypatch.setattr(alert_views, "alerts_receive", broken)

    response = post(integration.path, FIRING, **{"X-Request-ID": "trace-4711"})

    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "trace-4711" in response.json()["message"]
    assert response["X-Request-ID"] == "trace-4711"
    _assert_masked_and_named(logs, integration.token, "trace-4711")
    [failure] = [r for r in logs.records if r.exc_info]
    assert failure.name == "django.request"  # as every 500 of the site, so alerting sees it
    assert failure.getMessage() == "Internal Server Error: /integrations/generic/****/"
    formatted = request_log.Formatter().format(failure)
    assert "RuntimeError: lost the database while at /integrations/generic/****/" in formatted
    assert integration.token not in formatted


def test_a_failure_midway_through_a_batch_keeps_none_of_it_and_is_logged_masked(
    integration, logs, monkeypatch
):
    real = alert_services._alert_apply

    def fails_on_second(integration_, alert, component, now):
        if alert.fingerprint == "second":
            raise RuntimeError(f"disk full {integration_.path}")
        return real(integration_, alert, component, now)

    monkeypatch.setattr(alert_services, "_alert_apply", fails_on_second)
    body = {"alerts": [FIRING, {**FIRING, "id": "second"}]}

    response = post(integration.path, body)

    assert response.status_code == 500
    assert not integration.states.exists()  # the first alert was not kept either
    assert integration.token not in "\n".join(lines(logs))


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        ("0f8fad5b-d9cb-469f-a165-70867728950e", True),
        ("abc123", True),
        ("", False),
        ("x" * 200, False),
        ("evil\nline", False),
        ("evil request_id=other", False),
        ("-leading-dash", False),
    ],
)
def test_a_sane_request_id_is_kept_and_anything_else_replaced(integration, header, kept):
    response = post(integration.path, FIRING, **({"X-Request-ID": header} if header else {}))

    assert (response["X-Request-ID"] == header) is kept
    assert len(response["X-Request-ID"]) <= 128


def test_every_log_record_of_the_process_is_masked(logs):
    token = "Zm9vYmFy-secret_token"
    logging.getLogger("django.server").info(
        '"%s" %s %s', f"POST /integrations/alertmanager/{token}/ HTTP/1.1", 200, 12
    )
    logging.getLogger("celery").warning("retrying %(url)s", {"url": f"/integrations/x/{token}"})
    try:
        raise ValueError(f"https://status.example.com/integrations/grafana/{token}/?a=b")
    except ValueError:
        logging.getLogger("anything").exception("failed")

    text = "\n".join(lines(logs)) + "".join(r.exc_text or "" for r in logs.records)
    assert token not in text
    assert "/integrations/alertmanager/****/" in text
    assert "/integrations/x/****" in text
    assert "/integrations/grafana/****/?a=b" in text


# gunicorn, as `make run` and the Docker image start it


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_gunicorns_access_log_masks_the_token_and_names_the_request_id(tmp_path, settings):
    ComponentFactory(name="API")
    integration = AlertIntegration.objects.create(name="Cron", kind=AlertKind.GENERIC)
    port = _free_port()
    env = {
        **os.environ,
        **database_env(),
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECRET_KEY": "test-only-" + "x" * 50,
        # The test's own cache keys: nothing another test's processes left in Redis applies.
        "CACHE_KEY_PREFIX": settings.CACHES["default"].get("KEY_PREFIX") or "beacon",
    }
    log = tmp_path / "gunicorn.log"
    gunicorn = Path(sys.executable).with_name("gunicorn")
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(gunicorn), "-c", "python:statuspage.gunicorn_conf", "statuspage.wsgi"]
            + ["--bind", f"127.0.0.1:{port}", "--workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(f"{base}/integrations/generic/x/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        good = httpx.post(
            base + integration.path, json=FIRING, headers={"X-Request-ID": "from-nginx-1"}
        )
        bad = httpx.post(base + integration.path, content=b"[[[")
        unslashed = httpx.post(base + integration.path.rstrip("/"), content=b"{}")
    finally:
        server.terminate()
        server.wait(timeout=10)

    assert good.status_code == 200 and bad.status_code == 400
    assert unslashed.status_code in (301, 404, 500)  # never reaches the view
    text = log.read_text()
    assert integration.token not in text
    assert '"POST /integrations/generic/****/ HTTP/1.1" 200' in text
    assert "request_id=from-nginx-1" in text
    assert f"request_id={bad.headers['X-Request-ID']}" in text


# nginx, with deploy/nginx/beacon.conf as shipped (paths and ports moved to a temp dir)


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed")
def test_nginxs_logs_mask_the_token_and_name_the_request_id(tmp_path):
    with shipped_nginx(tmp_path) as base:
        response = httpx.post(f"{base}/integrations/grafana/Top-Secret_42/?a=1", json={})

    # No Beacon behind it: nginx answers its own 503 and the error log has its say.
    assert response.status_code == 503
    logs = "".join(path.read_text() for path in tmp_path.glob("*.log"))
    assert "Top-Secret_42" not in logs
    assert '"POST /integrations/grafana/****/?a=1 HTTP/1.1" 503' in logs
    assert "request_id=" in logs


def test_a_log_call_whose_arguments_do_not_fit_still_leaks_nothing(logs):
    token = "Zm9vYmFy-secret_token"
    logging.getLogger("anything").warning("%s %s", f"/integrations/generic/{token}/")

    [record] = logs.records
    assert token not in record.getMessage()
    assert "/integrations/generic/****/" in record.getMessage()

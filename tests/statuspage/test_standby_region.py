"""The second-region runbook (docs/deployment.md, "A second region"), run for real.

A primary region (a private PostgreSQL primary and a web host on it) and a standby region (a
web host whose DATABASE_URL is a streaming standby of that primary, with a Redis database of
its own and no worker) are started as separate processes. The standby serves current pages
while it streams, refuses writes saying why, keeps serving the last state saying since when
once the primary is gone, and takes staff's changes once promoted.
"""

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.nginx import free_port
from tests.postgres_pair import Cluster, primary_and_standby
from tests.processes import process, wait_until_answering, within

pytestmark = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="each region has a Redis database of its own"
)

ROOT = Path(__file__).resolve().parents[2]
NOTICE = "We cannot refresh this page right now. It shows the status as of"
READ_ONLY = "read-only: its database is a standby"
# The probe runs every STANDBY_PROBE_SECONDS on a standby; replication here is local.
VISIBLE_WITHIN = 5.0


def _redis_url(db: int) -> str:
    base = os.environ["REDIS_URL"].rsplit("/", 1)[0]
    return f"{base}/{db}"


def _flush(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def _manage(env: dict[str, str], *args: str) -> str:
    import subprocess

    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


SEED = """
from components.models import Component
from statuspage.api_v1.keys import api_key_create
from tests.incidents.factories import StaffFactory
owner = StaffFactory(username="oncall", groups=["Admins"])
owner.set_password("correct horse battery staple")
owner.save()
Component.objects.create(name="API")
print(api_key_create(owner=owner, name="failover")[1])
"""


class Region:
    def __init__(self, name: str, web: str, snapshot_dir: Path):
        self.name, self.web, self.snapshot_dir = name, web, snapshot_dir

    def components(self) -> dict[str, str]:
        try:
            response = httpx.get(self.web + "/api/v2/components.json", timeout=3)
        except httpx.TransportError:
            return {}
        if response.status_code != 200:
            return {}
        return {c["name"]: c["status"] for c in json.loads(response.content)["components"]}

    def page(self) -> str:
        return httpx.get(self.web + "/", timeout=3).text


@pytest.fixture(scope="module")
def regions(tmp_path_factory) -> Iterator[tuple[Cluster, Cluster, Region, Region, str]]:
    tmp = tmp_path_factory.mktemp("regions")
    redis_urls = {"primary": _redis_url(14), "standby": _redis_url(15)}
    with primary_and_standby("beacon-regions-") as (primary, standby), ExitStack() as stack:
        with primary.connect() as conn:
            conn.execute("CREATE DATABASE beacon")
        base_env = {
            # Each region's only database is its DATABASE_URL: a replica URL the suite runs
            # with names a database of this machine's server, not of the pair.
            **{k: v for k, v in os.environ.items() if k != "DATABASE_REPLICA_URL"},
            "SNAPSHOT_RENDER_ON_WRITE": "0",  # no worker: the web hosts render what they serve
            "SNAPSHOT_PROBE_SECONDS": "1",
            "STANDBY_PROBE_SECONDS": "0.5",
            "LOG_LEVEL": "INFO",
            "STATIC_MANIFEST": "0",  # no collectstatic here
        }
        envs = {
            "primary": {**base_env, "DATABASE_URL": primary.url("beacon")},
            "standby": {**base_env, "DATABASE_URL": standby.url("beacon")},
        }
        for name, env in envs.items():
            _flush(redis_urls[name])
            env.update(
                REDIS_URL=redis_urls[name],
                CACHE_KEY_PREFIX=f"beacon-region-{name}",
                SNAPSHOT_DIR=str(tmp / name / "snapshots"),
            )
        _manage(envs["primary"], "migrate", "--noinput")
        key = _manage(envs["primary"], "shell", "-c", SEED).strip().splitlines()[-1]

        started: dict[str, Region] = {}
        for name, env in envs.items():
            port = free_port()
            gunicorn = [
                str(Path(sys.executable).with_name("gunicorn")),
                *("-c", "python:statuspage.gunicorn_conf", "-b", f"127.0.0.1:{port}"),
                *("-w", "2", "statuspage.wsgi"),
            ]
            stack.enter_context(process(gunicorn, env, tmp / f"{name}-web.log"))
            started[name] = Region(name, f"http://127.0.0.1:{port}", tmp / name / "snapshots")
        for region in started.values():
            wait_until_answering(region.web + "/robots.txt")
        try:
            yield primary, standby, started["primary"], started["standby"], key
        finally:
            for url in redis_urls.values():
                _flush(url)


def _api(region: Region, method: str, path: str, key: str, body=None) -> httpx.Response:
    return httpx.request(
        method,
        f"{region.web}/api/v1{path}",
        headers={"Authorization": f"OAuth {key}"},
        json=body,
        timeout=10,
    )


def _admin_sign_in(region: Region) -> httpx.Response:
    """The admin's password step, as a browser sends it (CSRF cookie and token)."""
    with httpx.Client(base_url=region.web, timeout=10) as client:
        form = client.get("/admin/login/")
        assert form.status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token is not None
        return client.post(
            "/admin/login/?next=/admin/",
            data={
                "csrfmiddlewaretoken": token.group(1),
                "username": "oncall",
                "password": "correct horse battery staple",
            },
            headers={"Referer": region.web + "/admin/login/"},
        )


def test_a_standby_region_follows_serves_the_last_state_and_takes_over_once_promoted(regions):
    primary_db, standby_db, primary, standby, key = regions
    page_id = _api(primary, "GET", "/pages", key).json()[0]["id"]
    components = _api(primary, "GET", f"/pages/{page_id}/components", key).json()
    api_id = next(c["id"] for c in components if c["name"] == "API")

    # 1. Streaming: the standby serves the primary's state, and follows a change in seconds.
    assert within(30, lambda: standby.components().get("API") == "operational") >= 0
    changed = _api(
        primary,
        "PATCH",
        f"/pages/{page_id}/components/{api_id}",
        key,
        {"component": {"status": "major_outage"}},
    )
    assert changed.status_code == 200, changed.text
    changed_at = time.time()
    took = within(10, lambda: standby.components().get("API") == "major_outage")
    assert 0 <= took < VISIBLE_WITHIN, f"the standby showed the change after {took:.2f} s"
    print(f"standby region: a change on the primary shown after {took:.2f} s")
    assert NOTICE not in standby.page()

    # 2. Read-only while it is a standby: writes are refused with a reason, reads answer.
    refused = _api(
        standby,
        "PATCH",
        f"/pages/{page_id}/components/{api_id}",
        key,
        {"component": {"status": "operational"}},
    )
    assert refused.status_code == 503
    assert READ_ONLY in refused.json()["error"]
    assert refused.headers["Retry-After"]
    assert _api(standby, "GET", f"/pages/{page_id}/components", key).status_code == 200
    sign_in = _admin_sign_in(standby)
    assert sign_in.status_code == 503
    assert "This copy of the status page is read-only" in sign_in.text

    # 3. The primary region goes down: the standby keeps the last state and says since when.
    time.sleep(1.0)  # the standby's probe sees the primary streaming once more
    primary_db.stop("immediate")
    stopped_at = time.time()
    took = within(10, lambda: NOTICE in standby.page())
    assert 0 <= took < VISIBLE_WITHIN, "the standby did not say it lost its primary"
    print(f"standby region: the lost primary said on the page after {took:.2f} s")
    since = float((standby.snapshot_dir / "refresh-failing-since").read_text())
    assert changed_at - 1 <= since <= stopped_at + 0.5
    assert standby.components().get("API") == "major_outage"
    assert _admin_sign_in(standby).status_code == 503

    # 4. Promoted: the notice goes, and staff post from the standby region.
    standby_db.promote()
    took = within(10, lambda: NOTICE not in standby.page())
    assert 0 <= took < VISIBLE_WITHIN, "the promoted standby still says it cannot refresh"
    print(f"standby region: promoted, the notice gone after {took:.2f} s")
    posted = _api(
        standby,
        "POST",
        f"/pages/{page_id}/incidents",
        key,
        {
            "incident": {
                "name": "Serving from the standby region",
                "status": "identified",
                "body": "Our primary region is down; we have failed over.",
                "component_ids": [api_id],
            }
        },
    )
    assert posted.status_code == 201, posted.text
    assert within(10, lambda: "Serving from the standby region" in standby.page()) >= 0
    assert _admin_sign_in(standby).status_code == 302  # on to the second factor

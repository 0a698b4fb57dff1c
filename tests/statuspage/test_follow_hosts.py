"""Two web hosts, each with its own snapshot directory and follower, stay consistent.

Each host is a gunicorn process and an nginx with deploy/nginx/beacon.conf as shipped (its
files tree that host's own), plus `manage.py follow_snapshots`; a third nginx balances both.
The worker writes to a directory of its own, so only the followers bring a change to the hosts.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from components.services import component_set_status
from tests.components.factories import ComponentFactory
from tests.nginx import free_port, run_nginx, shipped_nginx
from tests.processes import database_env, process, wait_until_answering, within

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="followers listen on Redis"),
    pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed"),
]

VISIBLE_WITHIN = 2.0


@dataclass
class Host:
    name: str
    snapshot_dir: Path
    web: str  # gunicorn, directly
    env: dict[str, str]
    nginx: str = ""  # this host's nginx: its files tree, else its gunicorn
    follower: subprocess.Popen | None = None

    @property
    def files(self) -> Path:
        return self.snapshot_dir / "files"


def _start_follower(stack: ExitStack, host: Host, *, wait: bool = True) -> None:
    command = [sys.executable, "manage.py", "follow_snapshots"]
    log = host.snapshot_dir.parent / f"follower-{time.monotonic_ns()}.log"
    host.follower = stack.enter_context(process(command, host.env, log))
    if wait and within(30, lambda: "caught up reason=start" in log.read_text()) < 0:
        pytest.fail(f"the follower of {host.name} did not start: {log.read_text()}")


def _start_host(stack: ExitStack, name: str, tmp_path: Path, env: dict[str, str]) -> Host:
    snapshot_dir = tmp_path / name / "snapshots"
    snapshot_dir.mkdir(parents=True)
    web_port = free_port()
    host = Host(
        name,
        snapshot_dir,
        f"http://127.0.0.1:{web_port}",
        {**env, "SNAPSHOT_DIR": str(snapshot_dir)},
    )
    gunicorn = [
        str(Path(sys.executable).with_name("gunicorn")),
        "-c",
        "python:statuspage.gunicorn_conf",
        "-b",
        f"127.0.0.1:{web_port}",
        "-w",
        "1",
        "statuspage.wsgi",
    ]
    stack.enter_context(process(gunicorn, host.env, tmp_path / name / "gunicorn.log"))
    _start_follower(stack, host)
    wait_until_answering(host.web + "/robots.txt")
    host.nginx = stack.enter_context(
        shipped_nginx(tmp_path / name / "nginx", files=host.files, upstream=f"127.0.0.1:{web_port}")
    )
    return host


def _front(stack: ExitStack, tmp_path: Path, hosts: list[Host]) -> str:
    """An nginx upstream in front of both hosts' nginx, round robin."""
    port = free_port()
    servers = "".join(f"server {h.nginx.removeprefix('http://')};\n" for h in hosts)
    conf = (
        f"access_log off; upstream hosts {{ {servers} }}\n"
        f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://hosts; "
        "proxy_set_header Host $host; } }\n"
    )
    stack.enter_context(run_nginx(tmp_path / "front", conf))
    return f"http://127.0.0.1:{port}"


def _status(base: str, name: str) -> str | None:
    try:
        response = httpx.get(base + "/api/v2/components.json", timeout=2)
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    components = json.loads(response.content)["components"]
    return next((c["status"] for c in components if c["name"] == name), None)


def _file_status(host: Host, name: str) -> str | None:
    path = host.files / "api/v2/components.json"
    try:
        components = json.loads(path.read_bytes())["components"]
    except (OSError, ValueError):
        return None
    return next((c["status"] for c in components if c["name"] == name), None)


def _everywhere(hosts: list[Host], front: str, name: str, status: str) -> Callable[[], bool]:
    def check() -> bool:
        return all(
            _file_status(h, name) == status
            and _status(h.web, name) == status
            and _status(h.nginx, name) == status
            for h in hosts
        ) and all(_status(front, name) == status for _ in hosts)

    return check


def test_two_web_hosts_serve_a_change_within_two_seconds_and_a_follower_catches_up(
    page, settings, tmp_path, worker
):
    api = ComponentFactory(name="API")
    env = {
        **os.environ,
        **database_env(),
        "CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "SNAPSHOT_RENDER_ON_WRITE": "0",
        "LOG_LEVEL": "INFO",
    }
    with ExitStack() as stack:
        hosts = [_start_host(stack, name, tmp_path, env) for name in ("a", "b")]
        front = _front(stack, tmp_path, hosts)
        wait_until_answering(front + "/robots.txt")

        # The worker (its own directory) renders; both hosts have it on disk and serve it.
        component_set_status(component=api, status="major_outage")
        took = within(10, _everywhere(hosts, front, "API", "major_outage"))
        assert 0 <= took < VISIBLE_WITHIN, f"visible everywhere after {took:.2f} s"

        # One follower is killed; a change meanwhile reaches only the other host's disk.
        b = hosts[1]
        assert b.follower is not None
        b.follower.kill()
        b.follower.wait()
        component_set_status(component=api, status="partial_outage")
        assert within(10, lambda: _file_status(hosts[0], "API") == "partial_outage") >= 0
        time.sleep(0.5)
        assert _file_status(b, "API") == "major_outage"  # behind: nobody wrote its disk

        # Started again, it catches up from the shared store and says so in one line.
        _start_follower(stack, b, wait=False)
        took = within(10, _everywhere(hosts, front, "API", "partial_outage"))
        assert took >= 0, "the restarted follower did not catch up"
        logs = "".join(p.read_text() for p in (tmp_path / "b").glob("follower-*.log"))
        assert "snapshot follower caught up reason=start" in logs

"""nginx with deploy/nginx/beacon.conf as shipped, its paths and ports moved to a temp dir."""

import getpass
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

CONF = Path(__file__).resolve().parents[1] / "deploy/nginx/beacon.conf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def shipped_nginx(tmp_path: Path, *, files: Path | None = None, upstream: str | None = None):
    """Runs nginx with `upstream` (host:port; by default nothing) as the Beacon behind it;
    yields its base URL once it answers."""
    port = free_port()
    conf = (
        CONF.read_text()
        .replace("127.0.0.1:8000;", f"{upstream or f'127.0.0.1:{free_port()}'};")
        .replace("/var/log/nginx/", f"{tmp_path}/")
        .replace("listen 80;", f"listen 127.0.0.1:{port};")
        .replace("listen [::]:80;", "")
        .replace("/srv/beacon/var/snapshots/files", str(files or tmp_path))
    )
    base = f"http://127.0.0.1:{port}"
    with run_nginx(tmp_path, conf):
        for _ in range(50):
            try:
                httpx.get(base + "/robots.txt")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base


@contextmanager
def run_nginx(prefix: Path, http_conf: str):
    """Runs nginx with `http_conf` in its http context, its files under `prefix`."""
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "beacon.conf").write_text(http_conf)
    (prefix / "nginx.conf").write_text(
        # Workers as this user, who can read the test's files (a no-op unless root).
        f"user {getpass.getuser()}; pid {prefix}/nginx.pid; error_log {prefix}/error.log;\n"
        f"events {{}} http {{ include {prefix}/beacon.conf; }}\n"
    )
    nginx = ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf")]
    subprocess.run(nginx, check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run([*nginx, "-s", "stop"], check=True, capture_output=True)

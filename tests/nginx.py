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
def shipped_nginx(tmp_path: Path, *, files: Path | None = None):
    """Runs nginx with no Beacon behind it; yields its base URL once it answers."""
    port, dead = free_port(), free_port()
    conf = (
        CONF.read_text()
        .replace("127.0.0.1:8000;", f"127.0.0.1:{dead};")
        .replace("/var/log/nginx/", f"{tmp_path}/")
        .replace("listen 80;", f"listen 127.0.0.1:{port};")
        .replace("listen [::]:80;", "")
        .replace("/srv/beacon/var/snapshots/files", str(files or tmp_path))
    )
    (tmp_path / "beacon.conf").write_text(conf)
    (tmp_path / "nginx.conf").write_text(
        # Workers as this user, who can read the test's files (a no-op unless root).
        f"user {getpass.getuser()}; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;\n"
        f"events {{}} http {{ include {tmp_path}/beacon.conf; }}\n"
    )
    nginx = ["nginx", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    subprocess.run(nginx, check=True, capture_output=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(50):
            try:
                httpx.get(base + "/robots.txt")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        subprocess.run([*nginx, "-s", "stop"], check=True, capture_output=True)

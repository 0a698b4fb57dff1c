"""deploy/kubernetes/: valid Kubernetes objects that run Beacon as docs/deployment.md says.

The kustomization is rendered here in Python (its resources, and its generated ConfigMaps
without the name hash); where kubectl is installed, `kubectl kustomize` must render the same
objects. Every object is checked against the Kubernetes API's schema for the oldest and the
newest version we claim (kubernetes-validate, strict: an unknown or misspelt field fails), and
against Beacon itself: the settings' names, the commands, nginx's configuration, and a web
pod's containers run side by side, answering their probes.
"""

import ast
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes_validate import utils as kubernetes_validate

from statuspage.public.snapshots.build import rebuild_hot_snapshots
from tests.nginx import free_port, run_nginx
from tests.processes import database_env, process
from tests.statuspage.test_security_headers import run_check_deploy

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy/kubernetes"
SHIPPED_NGINX_CONF = ROOT / "deploy/nginx/beacon.conf"
# The oldest Kubernetes the manifests are written for, and the newest the validator knows.
KUBERNETES_VERSIONS = ["1.29", kubernetes_validate.latest_version()]
# Read by the programs in the containers, not by statuspage/settings.py.
TOOL_ENV_NAMES = {"GUNICORN_CMD_ARGS"}

# The web pod's nginx configuration is deploy/nginx/beacon.conf with these changes (and a
# comment at the top saying so): TLS ends at the Ingress, nginx runs as a non-root user, and
# the volumes are mounted at the image's paths.
NGINX_CHANGES = [
    (
        "map $https $beacon_hsts {\n    on       ",
        "map $http_x_forwarded_proto $beacon_hsts {\n    https    ",
    ),
    ("    listen 80;\n    listen [::]:80;\n", "    listen 8080;\n"),
    ("root /srv/beacon/var/snapshots/files;", "root /data/snapshots/files;"),
    (
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Proto $http_x_forwarded_proto;",
    ),
    ("alias /srv/beacon/staticfiles/;", "alias /app/staticfiles/;"),
    ("alias /srv/beacon/var/media/;", "alias /data/media/;"),
]


def _load_yaml(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _env_file(path: Path) -> dict[str, str]:
    """A kustomize env file: NAME=value lines; blank lines and # comments are skipped."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


def render(directory: Path = MANIFESTS) -> list[dict[str, Any]]:
    """The kustomization's objects: its resources, then its generated ConfigMaps."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    objects = [obj for name in kustomization["resources"] for obj in _load_yaml(directory / name)]
    for generator in kustomization.get("configMapGenerator", []):
        data: dict[str, str] = {}
        for env in generator.get("envs", []):
            data |= _env_file(directory / env)
        for file in generator.get("files", []):
            data[Path(file).name] = (directory / file).read_text()
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": generator["name"]},
                "data": data,
            }
        )
    return objects


def _named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _pods(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each workload's pod spec, by the workload's name."""
    return {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]
        for o in objects
        if o["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}
    }


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [c for c in pod["containers"] if c["name"] == name]
    return found


def _mounts(container: dict[str, Any]) -> dict[str, str]:
    """Mount path -> volume name."""
    return {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}


def _settings_env_names() -> set[str]:
    """Every environment variable statuspage/settings.py reads, found in its source."""
    tree = ast.parse((ROOT / "statuspage/settings.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        func = node.func
        reads_env = (isinstance(func, ast.Name) and func.id == "_set_or") or (
            isinstance(func, ast.Attribute)
            and (
                (isinstance(func.value, ast.Name) and func.value.id == "env")
                or (
                    isinstance(func.value, ast.Call)
                    and isinstance(func.value.func, ast.Attribute)
                    and func.value.func.attr == "Env"
                )
            )
        )
        if reads_env:
            names.add(first.value)
    return names


def _nginx_conf() -> str:
    return (MANIFESTS / "nginx/beacon.conf").read_text()


def _dockerfile_cmd() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", "")
    [line] = [line for line in text.splitlines() if line.startswith("CMD ")]
    return json.loads(line.removeprefix("CMD "))


# The objects themselves.


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_for_the_kubernetes_api(version):
    objects = [*render(), *_load_yaml(MANIFESTS / "secret.example.yaml")]
    assert {o["kind"] for o in objects} >= {
        "Deployment",
        "Job",
        "Service",
        "PodDisruptionBudget",
        "ConfigMap",
        "Secret",
        "Ingress",
        "PersistentVolumeClaim",
    }
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_schema_check_rejects_a_misspelt_field():
    web = _named(render(), "Deployment", "beacon-web")
    web["spec"]["replica"] = web["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(web, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl is not installed")
def test_kubectl_kustomize_renders_the_same_objects():
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS)], check=True, capture_output=True, text=True
    ).stdout
    by_kubectl = [doc for doc in yaml.safe_load_all(rendered) if doc]
    ours = render()

    def key(obj: dict[str, Any]) -> tuple[str, str]:
        name = obj["metadata"]["name"]
        if obj["kind"] == "ConfigMap":  # kustomize appends a hash of the contents
            name = re.sub(r"-[a-z0-9]{10}$", "", name)
        return obj["kind"], name

    assert sorted(map(key, by_kubectl)) == sorted(map(key, ours))
    for obj in by_kubectl:
        if obj["kind"] == "ConfigMap":
            assert obj["data"] == _named(ours, "ConfigMap", key(obj)[1])["data"]


def test_env_names_are_the_ones_beacon_reads():
    known = _settings_env_names()
    # The parser found the settings (not an empty set that any name would fail against).
    assert {"DATABASE_URL", "REDIS_SENTINELS", "SNAPSHOT_DIR", "OBJECT_STORAGE_BUCKET"} <= known

    assignment = re.compile(r"^#?\s*([A-Z][A-Z0-9_]+)=", re.MULTILINE)
    named = {"settings.env": set(assignment.findall((MANIFESTS / "settings.env").read_text()))}
    secret_key = re.compile(r'^\s*#?\s*([A-Z][A-Z0-9_]+): "', re.MULTILINE)
    named["secret.example.yaml"] = set(
        secret_key.findall((MANIFESTS / "secret.example.yaml").read_text())
    )
    for workload, pod in _pods(render()).items():
        for container in _containers(pod):
            names = {e["name"] for e in container.get("env", [])}
            named[f"{workload}/{container['name']}"] = names - TOOL_ENV_NAMES

    unknown = {where: names - known for where, names in named.items() if names - known}
    assert not unknown, f"names statuspage/settings.py does not read: {unknown}"
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "EMAIL_URL"} <= named["secret.example.yaml"]
    assert {"DATABASE_REPLICA_URL", "OBJECT_STORAGE_SECRET_ACCESS_KEY"} <= named[
        "secret.example.yaml"
    ]
    assert {"REDIS_SENTINELS", "OBJECT_STORAGE_BUCKET", "SNAPSHOT_DIR"} <= named["settings.env"]


def test_every_beacon_container_reads_the_settings_and_the_secret():
    objects = render()
    [secret] = _load_yaml(MANIFESTS / "secret.example.yaml")
    _named(objects, "ConfigMap", "beacon-settings")
    checked = set()
    for workload, pod in _pods(objects).items():
        for container in _containers(pod):
            if container["image"] != "beacon" or container["name"] == "copy-static":
                continue  # nginx, and the static files' copy, which reads no settings
            sources = container["envFrom"]
            assert {"configMapRef": {"name": "beacon-settings"}} in sources, workload
            assert {"secretRef": {"name": secret["metadata"]["name"]}} in sources, workload
            checked.add(f"{workload}/{container['name']}")
    assert checked >= {
        "beacon-web/web",
        "beacon-web/follower",
        "beacon-web/wait-for-migrations",
        "beacon-worker/worker",
        "beacon-beat/beat",
        "beacon-migrate/migrate",
    }


@pytest.mark.django_db(transaction=False)
def test_check_deploy_is_clean_with_the_configmaps_settings(tmp_path):
    settings_map = _named(render(), "ConfigMap", "beacon-settings")["data"]
    result = run_check_deploy({**settings_map, "SECRET_KEY": secrets.token_urlsafe(50)}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_secret_example_holds_only_marked_placeholders():
    [secret] = _load_yaml(MANIFESTS / "secret.example.yaml")
    for name, value in secret["stringData"].items():
        assert "PLACEHOLDER" in value, name
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]


def test_containers_run_as_non_root_on_read_only_root_filesystems_with_resources():
    for workload, pod in _pods(render()).items():
        assert pod["securityContext"]["runAsNonRoot"] is True, workload
        assert pod["automountServiceAccountToken"] is False, workload
        for container in _containers(pod):
            where = f"{workload}/{container['name']}"
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            if container not in pod.get("initContainers", []):
                assert set(container["resources"]) == {"requests", "limits"}, where
                assert set(container["resources"]["requests"]) == {"cpu", "memory"}, where
                assert set(container["resources"]["limits"]) == {"cpu", "memory"}, where


# What runs, and how it is wired.


def test_beat_is_one_replica_replaced_by_recreation():
    objects = render()
    beat = _named(objects, "Deployment", "beacon-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    schedulers = [
        name
        for name, pod in _pods(objects).items()
        for c in pod["containers"]
        if c.get("command", [])[:4] == ["celery", "-A", "statuspage", "beat"]
    ]
    assert schedulers == ["beacon-beat"]


def test_workers_listen_on_the_queues_docker_compose_gives_them():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    compose_command = compose["services"]["worker"]["command"]
    worker = _container(_pods(render())["beacon-worker"], "worker")
    command = worker["command"]
    assert command[:4] == ["celery", "-A", "statuspage", "worker"]
    assert command[command.index("-Q") + 1] == compose_command[compose_command.index("-Q") + 1]
    # Celery's default concurrency is the node's CPU count, whatever the pod's share.
    assert "--concurrency" in command


def test_migrations_run_in_one_job_and_every_beacon_pod_waits_for_them():
    objects = render()
    job = _named(objects, "Job", "beacon-migrate")
    [migrate] = job["spec"]["template"]["spec"]["containers"]
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"]
    for workload in ("beacon-web", "beacon-worker", "beacon-beat"):
        pod = _pods(objects)[workload]
        waits = [c for c in pod["initContainers"] if c["name"] == "wait-for-migrations"]
        assert len(waits) == 1 and "manage.py migrate --check" in " ".join(waits[0]["command"])
        for container in pod["containers"]:
            assert "migrate" not in container.get("command", []), workload


@pytest.mark.django_db
def test_pods_start_once_the_database_is_migrated_and_wait_while_it_cannot_be_asked(tmp_path):
    pods = _pods(render())
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # python
        "BEACON_VAR_DIR": str(tmp_path),
        **database_env(),
    }
    waits = {
        workload: next(
            c for c in pods[workload]["initContainers"] if c["name"] == "wait-for-migrations"
        )
        for workload in ("beacon-web", "beacon-worker", "beacon-beat")
    }
    for workload, wait in waits.items():
        done = subprocess.run(wait["command"], env=env, cwd=ROOT, capture_output=True, timeout=60)
        assert done.returncode == 0, (workload, done.stdout, done.stderr)

    # Without a database to ask, they keep waiting: sh, and python or sleep under it, all
    # stopped together at the end.
    unreachable = env | {"DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/beacon"}
    waiting = [
        subprocess.Popen(
            wait["command"],
            env=unreachable,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for wait in waits.values()
    ]
    try:
        time.sleep(6)
        assert all(p.poll() is None for p in waiting), "an init container gave up"
    finally:
        for p in waiting:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def test_web_pods_are_nginx_gunicorn_and_a_follower_sharing_the_snapshot_volume():
    objects = render()
    web = _named(objects, "Deployment", "beacon-web")
    assert web["spec"]["replicas"] >= 2
    pod = web["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["nginx", "web", "follower"]
    nginx, gunicorn, follower = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}

    # gunicorn as the image runs it: no command of its own, the image's on port 8000, the
    # upstream nginx proxies to in the pod.
    assert "command" not in gunicorn and "args" not in gunicorn
    cmd = _dockerfile_cmd()
    assert cmd[:3] == ["gunicorn", "-c", "python:statuspage.gunicorn_conf"]
    assert cmd[cmd.index("--bind") + 1] == "0.0.0.0:8000"
    assert [p["containerPort"] for p in gunicorn["ports"]] == [8000]
    assert "server 127.0.0.1:8000;" in _nginx_conf()

    assert follower["command"] == ["python", "manage.py", "follow_snapshots"]

    # One emptyDir at SNAPSHOT_DIR for gunicorn and the follower; nginx's root is its files/.
    snapshot_dir = _named(objects, "ConfigMap", "beacon-settings")["data"]["SNAPSHOT_DIR"]
    assert _mounts(gunicorn)[snapshot_dir] == _mounts(follower)[snapshot_dir]
    snapshot_volume = _mounts(gunicorn)[snapshot_dir]
    assert volumes[snapshot_volume]["emptyDir"] == {}
    [root] = re.findall(r"^\s*root (\S+);", _nginx_conf(), re.MULTILINE)
    assert root == f"{snapshot_dir}/files"
    assert _mounts(nginx)[snapshot_dir] == snapshot_volume

    # /static/ and /media/ aliases are mounted in nginx: the static files copied from the image
    # by an init container, and the uploads volume gunicorn writes (MEDIA_ROOT).
    aliases = dict(re.findall(r"location (/\w+/) \{\n\s*alias (\S+)/;", _nginx_conf()))
    assert set(aliases) == {"/static/", "/media/"}
    [copy] = [c for c in pod["initContainers"] if c["name"] == "copy-static"]
    assert copy["command"][:3] == ["cp", "-R", "/app/staticfiles/."]
    assert _mounts(nginx)[aliases["/static/"]] == _mounts(copy)[copy["command"][3].rstrip("/")]
    assert _mounts(nginx)[aliases["/media/"]] == _mounts(gunicorn)["/data/media"]
    claim = volumes[_mounts(gunicorn)["/data/media"]]["persistentVolumeClaim"]["claimName"]
    assert _named(objects, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == [
        "ReadWriteMany"
    ]
    # The nginx configuration is the generated ConfigMap's.
    conf_volume = volumes[_mounts(nginx)["/etc/nginx/conf.d"]]
    conf_map = _named(objects, "ConfigMap", conf_volume["configMap"]["name"])
    assert conf_map["data"] == {"beacon.conf": _nginx_conf()}


def test_the_service_budget_and_ingress_reach_the_web_pods():
    objects = render()
    web = _named(objects, "Deployment", "beacon-web")
    labels = web["spec"]["template"]["metadata"]["labels"]
    service = _named(objects, "Service", "beacon-web")
    assert service["spec"]["selector"].items() <= labels.items()
    nginx = _container(web["spec"]["template"]["spec"], "nginx")
    [port] = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in nginx["ports"]}
    budget = _named(objects, "PodDisruptionBudget", "beacon-web")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["maxUnavailable"] < web["spec"]["replicas"]
    ingress = _named(objects, "Ingress", "beacon")
    backends = [
        path["backend"]["service"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    assert backends == [{"name": "beacon-web", "port": {"name": port["name"]}}]


def test_nginx_configuration_is_the_shipped_one_with_the_documented_changes():
    expected = SHIPPED_NGINX_CONF.read_text()
    for old, new in NGINX_CHANGES:
        assert expected.count(old) == 1, f"deploy/nginx/beacon.conf changed: {old!r}"
        expected = expected.replace(old, new)
    conf = _nginx_conf()
    header, found, rest = conf.partition(expected)
    assert found and not rest, "deploy/kubernetes/nginx/beacon.conf differs from the shipped one"
    assert all(line.startswith("#") or not line for line in header.splitlines())


# A web pod's containers, run here side by side as the manifest runs them.


def _wait_for(check, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{what} within {seconds} s")


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="the follower listens on Redis")
@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed")
def test_a_web_pod_answers_its_probes_and_serves_https_as_the_ingress_says(
    page, settings, tmp_path
):
    objects = render()
    pod = _pods(objects)["beacon-web"]
    nginx, gunicorn, follower = pod["containers"]
    pod_dir = tmp_path / "pod"
    snapshots, media, static = pod_dir / "snapshots", pod_dir / "media", pod_dir / "static"
    for directory in (snapshots, media, static):
        directory.mkdir(parents=True)
    ports = {8080: free_port(), 8000: free_port()}

    settings_map = _named(objects, "ConfigMap", "beacon-settings")["data"]
    env = {
        **os.environ,
        **settings_map,
        # Where this machine has them: the test database, a prefix of the test's own, and
        # the pod's volumes in a temporary directory.
        **database_env(),
        "CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "BEACON_VAR_DIR": str(pod_dir),
        "SNAPSHOT_DIR": str(snapshots),
        "MEDIA_ROOT": str(media),
        # The image collects the static files when it is built; a checkout has none.
        "STATIC_MANIFEST": "0",
    }
    web_command = _dockerfile_cmd()
    web_command[0] = str(Path(sys.executable).with_name("gunicorn"))
    web_command[web_command.index("0.0.0.0:8000")] = f"127.0.0.1:{ports[8000]}"
    conf = _nginx_conf()
    for old, new in [
        ("listen 8080;", f"listen 127.0.0.1:{ports[8080]};"),
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{ports[8000]};"),
        ("root /data/snapshots/files;", f"root {snapshots}/files;"),
        ("alias /app/staticfiles/;", f"alias {static}/;"),
        ("alias /data/media/;", f"alias {media}/;"),
        ("/var/log/nginx/", f"{pod_dir}/"),
    ]:
        conf = _replace(conf, old, new)
    follower_command = [sys.executable, *follower["command"][1:]]
    assert follower["command"][0] == "python"

    with ExitStack() as stack:
        web_env = env | {e["name"]: e["value"] for e in gunicorn["env"]}
        stack.enter_context(process(web_command, web_env, pod_dir / "web.log"))
        stack.enter_context(process(follower_command, env, pod_dir / "follower.log"))
        stack.enter_context(run_nginx(pod_dir / "nginx", conf))
        nginx_url = f"http://127.0.0.1:{ports[8080]}"

        # Each HTTP probe, on the port it names, with the headers it sends.
        for container in (nginx, gunicorn):
            named_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container.get(kind, {})
                if "tcpSocket" in probe:
                    assert probe["tcpSocket"]["port"] in named_ports
                if "httpGet" not in probe:
                    continue
                get = probe["httpGet"]
                url = f"http://127.0.0.1:{ports[named_ports[get['port']]]}{get['path']}"
                headers = {h["name"]: h["value"] for h in get.get("httpHeaders", [])}
                _wait_for(
                    lambda url=url, headers=headers: (
                        httpx.get(url, headers=headers, timeout=5).status_code == 200
                    ),
                    f"{container['name']}'s {kind} answered 200 at {url}",
                )

        # The worker (this process, its own snapshot directory) rebuilds; the follower brings
        # the files to the pod's volume, and nginx serves them itself.
        _wait_for(
            lambda: "caught up reason=start" in (pod_dir / "follower.log").read_text(),
            "the follower started",
        )
        rebuild_hot_snapshots()
        _wait_for(lambda: (snapshots / "files/index.html").exists(), "the page reached the pod")
        https = {"Host": "status.example.com", "X-Forwarded-Proto": "https"}
        page_from_file = httpx.get(nginx_url + "/", headers=https)
        assert page_from_file.status_code == 200
        assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', page_from_file.headers["ETag"])  # nginx's
        assert "max-age=31536000" in page_from_file.headers["Strict-Transport-Security"]
        plain = httpx.get(nginx_url + "/", headers={"Host": "status.example.com"})
        assert "Strict-Transport-Security" not in plain.headers

        # Django hears the Ingress's scheme from nginx: no redirect to HTTPS for a request
        # that came in over HTTPS, one for a request that did not.
        sign_in = httpx.get(nginx_url + "/admin/login/", headers=https)
        assert sign_in.status_code == 200
        assert sign_in.headers["Strict-Transport-Security"].startswith("max-age=")
        redirected = httpx.get(nginx_url + "/admin/login/", headers={"Host": "status.example.com"})
        assert redirected.status_code == 301
        assert redirected.headers["Location"] == "https://status.example.com/admin/login/"

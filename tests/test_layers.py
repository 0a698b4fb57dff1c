"""The layers only import downwards (import-linter's contracts in pyproject.toml), and what is
named instead of imported exists: the tasks that incidents/enqueue.py and the snapshot store
ask for by name."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("statuspage", "components", "incidents")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tree_keeps_its_layers():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-4000:]


def import_cycles(root: Path) -> list[list[str]]:
    """Every cycle of imports among our modules, imports inside functions included."""
    code = (
        "import json, sys, grimp\n"
        "graph = grimp.build_graph(*sys.argv[1:], cache_dir=None)\n"
        "modules = sorted(m for m in graph.modules if '.migrations' not in m)\n"
        "cycles = set()\n"
        "for module in modules:\n"
        "    for imported in graph.find_modules_directly_imported_by(module):\n"
        "        if '.migrations' in imported:\n"
        "            continue\n"
        "        back = graph.find_shortest_chain(importer=imported, imported=module)\n"
        "        if back:\n"
        "            cycles.add(tuple(sorted({module, *back})))\n"
        "print(json.dumps(sorted(cycles)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *PACKAGES],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_no_module_imports_itself_back_not_even_inside_a_function():
    assert import_cycles(ROOT) == []


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory) -> Path:
    """The packages and pyproject.toml, copied so that a test can add a module to them."""
    root = tmp_path_factory.mktemp("tree")
    shutil.copy(ROOT / "pyproject.toml", root)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("*.pyc"))
    return root


@pytest.mark.parametrize(
    ("module", "source", "refusal"),
    [
        # Domain code importing the renderer, at the top or hidden in a function.
        (
            "components/probe.py",
            "from statuspage.public import snapshots\n",
            "components is not allowed to import statuspage.public",
        ),
        (
            "incidents/notify/probe.py",
            "def f():\n    from statuspage.public.selectors import build_status_page\n",
            "incidents is not allowed to import statuspage.public",
        ),
        # Components importing incidents.
        (
            "components/checks/probe.py",
            "import incidents.notify.events\n",
            "components is not allowed to import incidents",
        ),
        # The leaf importing a model, or the page's rows importing a domain app.
        (
            "statuspage/lib/probe.py",
            "from components.models import Component\n",
            "statuspage.lib is not allowed to import components",
        ),
        (
            "statuspage/lib/probe.py",
            "from statuspage.models import PageSettings\n",
            "statuspage.lib is not allowed to import statuspage.models",
        ),
        # The public surface importing the project (its tasks, settings, URLs).
        (
            "statuspage/public/probe.py",
            "from statuspage.tasks import rebuild_snapshots\n",
            "statuspage.public is not allowed to import statuspage.tasks",
        ),
        # A new module of the statuspage package that no layer lists.
        ("statuspage/probe.py", "X = 1\n", "not listed as layers"),
    ],
)
def test_an_uphill_import_or_an_unplaced_module_breaks_the_contracts(
    tree_copy, module, source, refusal
):
    probe = tree_copy / module
    probe.write_text(source)
    try:
        result = lint_imports(tree_copy)
    finally:
        probe.unlink()
    assert result.returncode != 0
    assert refusal in " ".join(result.stdout.split()), result.stdout[-4000:]


@pytest.mark.parametrize(
    ("module", "source"),
    [
        # The cycles of issue 15, hidden in functions: notify back into tasks, and a check
        # rollup back into the snapshot store through the signal's receiver.
        ("incidents/notify/probe.py", "def f():\n    from incidents import tasks\n"),
        ("components/probe.py", "def f():\n    from components import admin\n"),
        ("statuspage/lib/probe.py", "def f():\n    import statuspage.lib.markdown\n"),
    ],
)
def test_an_import_back_inside_a_function_is_a_cycle(tree_copy, module, source):
    probe = tree_copy / module
    probe.write_text(source)
    # Closing the loop: the module imported imports the probe.
    importer = {
        "incidents/notify/probe.py": tree_copy / "incidents" / "tasks.py",
        "components/probe.py": tree_copy / "components" / "admin.py",
        "statuspage/lib/probe.py": tree_copy / "statuspage" / "lib" / "markdown.py",
    }[module]
    original = importer.read_text()
    dotted = module.removesuffix(".py").replace("/", ".")
    importer.write_text(original + f"\nimport {dotted}  # noqa\n")
    try:
        cycles = import_cycles(tree_copy)
    finally:
        importer.write_text(original)
        probe.unlink()
    assert any(dotted in cycle for cycle in cycles), cycles


def _named_tasks() -> list[str]:
    enqueue = (ROOT / "incidents" / "enqueue.py").read_text()
    names = [f"incidents.tasks.{name}" for name in re.findall(r'_delay\("(\w+)"', enqueue)]
    assert len(names) == 4
    return [*names, "statuspage.tasks.rebuild_snapshots"]


def test_every_task_named_instead_of_imported_is_registered_in_a_fresh_process():
    """A web process imports no task module by itself; a name must still find its task."""
    code = (
        "import sys, django; django.setup()\n"
        "from celery import current_app\n"
        "from statuspage.public.snapshots import keys\n"
        "assert keys.REBUILD_TASK in sys.argv[1:]\n"
        "missing = [n for n in sys.argv[1:] if n not in current_app.tasks]\n"
        "print('missing:', missing)\n"
        "sys.exit(1 if missing else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *_named_tasks()],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "statuspage.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


def test_named_tasks_keep_their_queues():
    from statuspage.celery import app

    queues = {name: app.amqp.router.route({}, name)["queue"].name for name in _named_tasks()}
    assert queues == {
        "incidents.tasks.expand_notification_event": "notify",
        "incidents.tasks.send_subscription_email": "notify",
        "incidents.tasks.tell_staff_by_email": "default",
        "incidents.tasks.tell_staff_by_webhook": "default",
        "statuspage.tasks.rebuild_snapshots": "snapshots",
    }

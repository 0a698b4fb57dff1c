"""The lock agrees with pyproject.toml: every dependency pinned, with hashes, inside its range.

requirements.txt (runtime) and requirements-dev.txt (runtime and dev) are what `make install`,
CI and the Dockerfile install; pyproject.toml keeps the ranges. A range changed or a dependency
added without `make lock` leaves the two disagreeing, and these tests say which package.
No network: the files are read and compared with `packaging`.
"""

import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


class LockError(ValueError):
    """A line of a lock file that pins nothing exactly, or without a hash."""


def parse_lock(text: str) -> dict[NormalizedName, Version]:
    """The exact pins of a pip-compile lock file, by canonical name."""
    pins: dict[NormalizedName, Version] = {}
    for raw in text.replace("\\\n", " ").splitlines():
        line = re.sub(r"(^|\s)#.*", "", raw).strip()
        if not line:
            continue
        if line.startswith("-"):
            raise LockError(f"an option or editable install has no place in a lock: {line!r}")
        spec, _, options = line.partition(" --hash=")
        options = "--hash=" + options if options else ""
        try:
            requirement = Requirement(spec.strip())
        except InvalidRequirement as error:
            raise LockError(f"not a requirement: {line!r} ({error})") from error
        name = canonicalize_name(requirement.name)
        if requirement.url:
            raise LockError(f"{name} is installed from a URL, not pinned: {line!r}")
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
            raise LockError(f"{name} is not pinned to one version: {line!r}")
        if not HASH.search(options) or HASH.sub("", options).strip():
            raise LockError(f"{name} has no sha256 hash (or something else beside them)")
        if name in pins:
            raise LockError(f"{name} is pinned twice")
        pins[name] = Version(specifiers[0].version)
    return pins


def lock_problems(pyproject: str, runtime_lock: str, dev_lock: str) -> list[str]:
    """What keeps the two lock files from installing what pyproject.toml asks for."""
    project = tomllib.loads(pyproject)["project"]
    runtime = parse_lock(runtime_lock)
    dev = parse_lock(dev_lock)
    problems = []
    wanted = [("requirements.txt", runtime, d) for d in project["dependencies"]]
    wanted += [("requirements-dev.txt", dev, d) for d in project["dependencies"]]
    wanted += [("requirements-dev.txt", dev, d) for d in project["optional-dependencies"]["dev"]]
    for filename, pins, line in wanted:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{filename} does not pin {name} ({line})")
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{filename} pins {name}=={pins[name]}, outside {line}")
    for name, version in runtime.items():
        if dev.get(name) != version:
            problems.append(
                f"requirements-dev.txt pins {name}=={dev.get(name)}, "
                f"requirements.txt {name}=={version}"
            )
    return problems


def _read(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def test_the_lock_pins_every_dependency_of_pyproject_inside_its_range():
    problems = lock_problems(
        _read("pyproject.toml"), _read("requirements.txt"), _read("requirements-dev.txt")
    )
    assert problems == [], "Run `make lock` (README: Development):\n" + "\n".join(problems)


def test_every_package_of_the_lock_has_hashes_so_pip_installs_it_in_hash_checking_mode():
    text = _read("requirements-dev.txt")
    pins = parse_lock(text)
    # Every package pip-compile wrote is a pin (none hides behind an option pip would ignore).
    assert len(pins) == len(re.findall(r"^[A-Za-z0-9]", text, flags=re.MULTILINE))
    assert {"django", "celery", "pytest", "pre-commit", "pip-tools"} <= set(pins)


def _drop(name: str) -> Callable[[str], str]:
    """Remove one package's block (its pin, hashes and `# via` lines) from a lock."""

    def edit(text: str) -> str:
        block = re.compile(rf"^{re.escape(name)}==.*?(?=^[A-Za-z0-9]|\Z)", re.M | re.S | re.I)
        edited, count = block.subn("", text)
        assert count == 1, name
        return edited

    return edit


def _repin(name: str, version: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        edited, count = re.subn(
            rf"^{re.escape(name)}==\S+", f"{name}=={version}", text, flags=re.M | re.I
        )
        assert count == 1, name
        return edited

    return edit


def _keep(text: str) -> str:
    return text


def _add_to_pyproject(section: str, line: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        anchor = "dependencies = [\n" if section == "runtime" else "dev = [\n"
        assert anchor in text
        return text.replace(anchor, f'{anchor}    "{line}",\n', 1)

    return edit


@pytest.mark.parametrize(
    ("edit_pyproject", "edit_runtime", "edit_dev", "expected"),
    [
        pytest.param(
            _keep, _drop("django"), _keep, "requirements.txt does not pin django", id="runtime-gone"
        ),
        pytest.param(
            _keep,
            _keep,
            _drop("django"),
            "requirements-dev.txt does not pin django",
            id="runtime-gone-from-dev-lock",
        ),
        pytest.param(
            _keep,
            _repin("django", "5.3.0"),
            _repin("django", "5.3.0"),
            "requirements.txt pins django==5.3.0, outside Django>=5.2,<5.3",
            id="above-the-range",
        ),
        pytest.param(
            _keep,
            _repin("django", "5.1.4"),
            _repin("django", "5.1.4"),
            "requirements.txt pins django==5.1.4, outside Django>=5.2,<5.3",
            id="below-the-range",
        ),
        pytest.param(
            _keep,
            _repin("django", "5.3.0rc1"),
            _repin("django", "5.3.0rc1"),
            "requirements.txt pins django==5.3.0rc1, outside Django>=5.2,<5.3",
            id="pre-release-above-the-range",
        ),
        pytest.param(
            _keep,
            _keep,
            _drop("pytest-django"),
            "requirements-dev.txt does not pin pytest-django",
            id="dev-gone",
        ),
        pytest.param(
            _keep,
            _keep,
            _repin("ruff", "0.5.7"),
            "requirements-dev.txt pins ruff==0.5.7, outside ruff>=0.6",
            id="dev-below-the-range",
        ),
        pytest.param(
            _keep,
            _keep,
            _repin("kombu", "5.0.0"),
            "requirements-dev.txt pins kombu==5.0.0, requirements.txt kombu==",
            id="dev-lock-drifts-from-runtime-lock",
        ),
        pytest.param(
            _add_to_pyproject("runtime", "sentry-sdk>=2.0"),
            _keep,
            _keep,
            "requirements.txt does not pin sentry-sdk (sentry-sdk>=2.0)",
            id="runtime-added-without-make-lock",
        ),
        pytest.param(
            _add_to_pyproject("dev", "pytest-benchmark>=4.0"),
            _keep,
            _keep,
            "requirements-dev.txt does not pin pytest-benchmark (pytest-benchmark>=4.0)",
            id="dev-added-without-make-lock",
        ),
        pytest.param(
            lambda text: text.replace('"Django>=5.2,<5.3"', '"Django>=5.3,<5.4"'),
            _keep,
            _keep,
            "requirements.txt pins django==",
            id="range-raised-without-make-lock",
        ),
    ],
)
def test_a_lock_out_of_step_with_pyproject_is_named(
    edit_pyproject, edit_runtime, edit_dev, expected
):
    problems = lock_problems(
        edit_pyproject(_read("pyproject.toml")),
        edit_runtime(_read("requirements.txt")),
        edit_dev(_read("requirements-dev.txt")),
    )
    assert any(problem.startswith(expected) for problem in problems), problems


def test_names_match_whatever_their_spelling():
    """Django, django; factory_boy, factory-boy, Factory.Boy: one package for pip."""
    pyproject = '[project]\ndependencies = ["Django>=5.2"]\n[project.optional-dependencies]\n'
    pyproject += 'dev = ["factory_boy>=3.3", "Zope.Interface>=6"]\n'
    hashes = " \\\n    --hash=sha256:" + "a" * 64
    runtime = "django==5.2.1" + hashes + "\n    # via beacon (pyproject.toml)\n"
    dev = runtime + "Factory-Boy==3.3.3" + hashes + "\nzope-interface==7.0" + hashes + "\n"
    assert lock_problems(pyproject, runtime, dev) == []


HASH_LINE = " \\\n    --hash=sha256:" + "0" * 64


@pytest.mark.parametrize(
    ("lock", "message"),
    [
        pytest.param("django==5.2.1\n", "django has no sha256 hash", id="no-hash"),
        pytest.param(
            "django==5.2.1 \\\n    --hash=md5:" + "0" * 32 + "\n",
            "django has no sha256 hash",
            id="md5-only",
        ),
        pytest.param(
            "django==5.2.1 \\\n    --hash=sha256:abc\n",
            "django has no sha256 hash",
            id="short-hash",
        ),
        pytest.param("django>=5.2" + HASH_LINE, "django is not pinned", id="a-range"),
        pytest.param("django" + HASH_LINE, "django is not pinned", id="no-version"),
        pytest.param("django==5.2.*" + HASH_LINE, "django is not pinned", id="wildcard"),
        pytest.param("django~=5.2.1" + HASH_LINE, "django is not pinned", id="compatible"),
        pytest.param("django>=5.2,==5.2.1" + HASH_LINE, "django is not pinned", id="pin-and-range"),
        pytest.param("-e .\n", "an option or editable install", id="editable"),
        pytest.param("-r other.txt\n", "an option or editable install", id="include"),
        pytest.param(
            "--extra-index-url https://example.invalid/simple\n",
            "an option or editable install",
            id="extra-index",
        ),
        pytest.param(
            "beacon @ file:///srv/beacon" + HASH_LINE, "beacon is installed from a URL", id="url"
        ),
        pytest.param(
            "django==5.2.1" + HASH_LINE + "\nDjango==5.2.2" + HASH_LINE,
            "django is pinned twice",
            id="twice",
        ),
        pytest.param(
            "django==5.2.1" + HASH_LINE + " --no-binary :all:\n",
            "django has no sha256 hash (or something else beside them)",
            id="option-beside-the-hashes",
        ),
        pytest.param("django=5.2.1" + HASH_LINE, "not a requirement", id="garbled"),
    ],
)
def test_a_lock_line_that_pins_nothing_exactly_is_refused(lock, message):
    with pytest.raises(LockError, match=re.escape(message)):
        parse_lock(lock)

"""What rendering every enabled language costs a rebuild, beside one language, in one run.

    .venv/bin/python bench/languages.py [--rounds 5]

Each language has its own snapshots (/de/, /de/history/ …), so a public change rebuilds the
hot set once per enabled language's localized outputs. This measures the worker's rebuild
(`rebuild_hot_snapshots`, what the `rebuild_snapshots` task runs) on whatever database and
cache the environment names (run it on the `make run` demo: embedded defaults), with one
language enabled, then all six, then one again, each the median of --rounds rebuilds after a
public change. The page's language settings are put back afterwards.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "statuspage.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from statuspage.models import PageSettings  # noqa: E402
from statuspage.public.snapshots import build, keys  # noqa: E402
from statuspage.services import page_settings_update  # noqa: E402

ALL = [code for code, _name in settings.LANGUAGES]


def rebuild_median(enabled: list[str], rounds: int) -> tuple[int, float]:
    page_settings_update(
        page=PageSettings.load(), changes={"default_language": "en", "enabled_languages": enabled}
    )
    times = []
    built = 0
    for _ in range(rounds):
        keys.publish_change()
        started = time.perf_counter()
        built = build.rebuild_hot_snapshots()
        times.append(time.perf_counter() - started)
    return built, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    page = PageSettings.load()
    before = {
        "default_language": page.default_language,
        "enabled_languages": list(page.enabled_languages),
    }
    try:
        one_n, one = rebuild_median(["en"], rounds)
        all_n, every = rebuild_median(ALL, rounds)
        _, one_again = rebuild_median(["en"], rounds)
    finally:
        page_settings_update(page=PageSettings.load(), changes=before)
    print(
        f"1 language:  {one_n} outputs, median {one * 1000:.0f} ms "
        f"(again after: {one_again * 1000:.0f} ms)"
    )
    print(
        f"{len(ALL)} languages: {all_n} outputs, median {every * 1000:.0f} ms, "
        f"{every / ((one + one_again) / 2):.2f} x one language"
    )


if __name__ == "__main__":
    main()

"""The worker's rebuild of the hot set, timed in this checkout or another (A/B, same run).

    .venv/bin/python bench/rebuild_ab.py [--tree DIR] [--rounds 5]

Run with the environment of a bench database (bench/api.py --keep-database leaves
beacon_bench_api; `bench/run.py`'s beacon_env gives the variables): each round makes the
public outputs stale (a new generation, as a change would) and times
`rebuild_hot_snapshots()`, the body of the worker's rebuild task. Prints the outputs rebuilt
and the median seconds as a JSON line. `--tree` times another checkout's code (an older
commit in a git worktree) on the same database, so two runs side by side compare code alone.
"""

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(rounds: int) -> dict:
    import django

    django.setup()
    logging.disable(logging.INFO)  # a line per output rebuilt
    from statuspage.public import public_cache
    from statuspage.public.snapshots import build

    times, built = [], 0
    for _ in range(rounds + 1):  # the first warms this process's memories and is not counted
        public_cache.invalidate()
        started = time.perf_counter()
        built = build.rebuild_hot_snapshots() or 0
        times.append(time.perf_counter() - started)
    return {"outputs": built, "median_s": round(statistics.median(times[1:]), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=ROOT)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("REBUILD " + json.dumps(measure(args.rounds)))
        return
    env = dict(os.environ, PYTHONPATH=str(args.tree.resolve()))
    env.setdefault("DJANGO_SETTINGS_MODULE", "statuspage.settings")
    output = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", "--rounds", str(args.rounds)],
        cwd=args.tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(output.split("REBUILD ", 1)[1].splitlines()[0])
    print(json.dumps({"tree": str(args.tree), **result}))


if __name__ == "__main__":
    main()

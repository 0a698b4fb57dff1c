"""What rendering the uptime history (/uptime/) of 1,000 components costs, beside `/`.

    .venv/bin/python bench/uptime.py [--components 1000] [--days 365] [--rounds 5]

Adds --components showcased components, each with --days days of rollups
(tests.components.factories.bulk_uptime_history), to whatever database the environment names,
inside a transaction that is rolled back at the end: the database is left as it was. Then it
renders `/`, then `/uptime/` (the views, as a rebuild runs them: no snapshot, no
middleware, and cold: nothing kept from an earlier render) --rounds times each and prints
each one's median and their ratio.
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
from django.db import transaction  # noqa: E402
from django.test import RequestFactory  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from statuspage.models import PageSettings  # noqa: E402
from statuspage.public import api_v2, uptime, views  # noqa: E402
from tests.components.factories import bulk_uptime_history  # noqa: E402


class Rollback(Exception):
    pass


def median_render(view, path: str, rounds: int) -> tuple[float, int]:
    times = []
    size = 0
    for _ in range(rounds):
        # Cold, as the first render of a new generation is: the figures kept for the other
        # languages' renders of the same generation are forgotten.
        uptime._histories_memo.clear()
        api_v2._context_memo.clear()
        request = RequestFactory().get(path, HTTP_HOST=settings.ALLOWED_HOSTS[0].lstrip("."))
        started = time.perf_counter()
        response = view(request)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
        size = len(response.content)
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    # Static URLs without a collectstatic manifest: a fresh clone need not have run it.
    plain_static = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    try:
        with override_settings(STORAGES=plain_static), transaction.atomic():
            started = time.perf_counter()
            page = PageSettings.load()
            if not page.show_uptime_history:
                PageSettings.objects.filter(pk=page.pk).update(show_uptime_history=True)
                PageSettings.forget_cached()
            bulk_uptime_history(args.components, days=args.days, now=timezone.now(), zone=page.zone)
            print(
                f"seeded {args.components} components x {args.days} days in "
                f"{time.perf_counter() - started:.1f} s (rolled back afterwards)"
            )
            median_render(views.status_page, "/", 1)  # warm: templates, catalogues
            median_render(uptime.uptime, "/uptime/", 1)
            page_median, page_size = median_render(views.status_page, "/", args.rounds)
            uptime_median, uptime_size = median_render(uptime.uptime, "/uptime/", args.rounds)
            print(f"/        median {page_median * 1000:.0f} ms, {page_size / 1000:.0f} kB")
            print(
                f"/uptime/ median {uptime_median * 1000:.0f} ms, {uptime_size / 1000:.0f} kB, "
                f"{uptime_median / page_median:.2f} x /"
            )
            raise Rollback
    except Rollback:
        PageSettings.forget_cached()


if __name__ == "__main__":
    main()

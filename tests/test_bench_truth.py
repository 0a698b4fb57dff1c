"""bench/truth.py's pure helpers: what it reads from the page, the API and the SMTP server,
and how it judges the targets (the benchmark itself runs with `make bench-truth`)."""

import importlib
import json
from pathlib import Path

import pytest

from components.models import Component
from statuspage.public.selectors import ComponentRow
from statuspage.templatetags.beacon import component_row

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def truth():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCH))  # the bench's modules import each other by name
        yield importlib.import_module("truth")


def test_a_components_status_is_read_from_its_row_on_the_page(truth):
    rows = "".join(
        component_row(ComponentRow(Component(name=name, status=status), [], None))
        for name, status in [("API & co", "major_outage"), ("Website", "operational")]
    )

    assert truth.page_status(rows, "API & co") == "Major outage"
    assert truth.page_status(rows, "Website") == "Operational"
    assert truth.page_status(rows, "Login") is None


def test_a_components_status_is_read_from_the_api(truth):
    body = json.dumps({"components": [{"name": "API", "status": "partial_outage"}]}).encode()

    assert truth.api_status(body, "API") == "partial_outage"
    assert truth.api_status(body, "Website") is None


def test_the_inbox_finds_the_first_mail_to_someone_by_its_subject_after_a_moment(truth):
    inbox = truth.Inbox()
    inbox.note(
        b"Subject: [Bench] Visitors report problems: Website\r\n\r\nSee the page.\r\n",
        ["oncall@example.com"],
    )
    at = inbox.mails[0].at

    found = inbox.first(after=at, to="oncall@example.com", subject="Visitors report problems: ")
    assert found is not None and found.subject.endswith("Website")
    assert inbox.first(after=at, to="reader@example.com") is None
    assert inbox.first(after=at + 1, to="oncall@example.com") is None
    assert inbox.first(after=at, subject="No update for ") is None


def test_targets_pass_fail_or_are_not_measured(truth):
    targets = [
        truth.Target("public", 31.0, 35),
        truth.Target("reports", 414.0, 2000, at_least=True, unit="/s"),
        truth.Target("surge", None, 120, note="needs surge detection"),
    ]

    assert [t.verdict for t in targets] == ["pass", "FAIL", "not measured: needs surge detection"]
    table = truth.targets_table(targets)
    assert table[2] == "| public | 31.0 s | ≤ 35 s | pass |"
    assert table[3] == "| reports | 414.0 /s | ≥ 2,000 /s | FAIL |"
    assert table[4].startswith("| surge | – |")

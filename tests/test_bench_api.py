"""bench/api.py's judgement and report: issue 20's targets met or not, a read after a write
that does not show it, and the before/after the report quotes (the benchmark itself runs with
`make bench-api`)."""

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def api():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCH))  # the bench's modules import each other by name
        yield importlib.import_module("api")


def wrk_row(rps: float, p50: float, p99: float, non_2xx: int = 0) -> dict:
    return {
        "rps": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "non_2xx": non_2xx,
        "socket_errors": 0,
        "rps_all": [rps],
    }


def load(kind: str, p50: float, violations: int = 0) -> dict:
    return {
        "requests": 100,
        "rps": 20.0,
        "failed": 0,
        "p50_ms": p50,
        "p99_ms": 2 * p50,
        "kinds": {
            kind: {"requests": 100, "rps": 20.0, "failed": 0, "p50_ms": p50, "p99_ms": 2 * p50}
        },
        "reads_after_writes": {
            "requests": 100,
            "rps": 20.0,
            "failed": 0,
            "p50_ms": 5.0,
            "p99_ms": 9.0,
            "kinds": {"GET components": {}},
            "violations": violations,
            "examples": [],
        },
        "cpu_ms_per_request": {"beacon": 8.0, "worker": 0.5, "postgres": 1.5, "client": 0.5},
        "problems": [],
    }


def result(api, *, share: float, p99: float, write_p50: float, violations: int = 0) -> dict:
    reads = []
    for name in api.ENDPOINTS:
        for connections in api.CONNECTIONS:
            reads.append(
                {
                    "endpoint": name,
                    "label": f"/{name}",
                    "connections": connections,
                    "beacon": wrk_row(share * 1000, 10.0, p99),
                    "minimal": wrk_row(1000, 1.0, 2.0),
                    "limited": wrk_row(share * 1000, 10.0, p99) if connections == 16 else None,
                    "ratio_minimal": share,
                    "ratio_limited": 1.0 if connections == 16 else None,
                }
            )
    writes = {
        "threads": 4,
        "duration": 10,
        "read_after_write": True,
        "component_patch": load("PATCH component", write_p50, violations),
        "incident_update": load("PATCH incident (post an update)", write_p50),
        "incident_cycle": load("POST incident (open)", 2 * write_p50),
        "checks": {
            "read_after_write_violations": violations,
            "reads_after_writes": 300,
            "public_matches_last_status": True,
            "api_matches_last_status": True,
            "public_shows_last_updates": True,
            "api_shows_last_updates": True,
            "public_after_patches_s": 0.1,
            "public_after_updates_s": 0.1,
            "public_after_incidents_s": 0.1,
            "incidents_opened": 50,
            "all_incidents_resolved": True,
            "failed_requests": 0,
        },
    }
    sample = {
        "wall_ms": 5.0,
        "queries": 1,
        "database_ms": 0.5,
        "redis_commands": 2,
        "redis_round_trips": 2,
        "redis_ms": 0.2,
        "instances": {"ApiKey": 1},
        "samples": 5,
    }
    function = {
        "function": "statuspage/api_v1/incidents.py:1(f)",
        "tottime_ms": 1.0,
        "cumtime_ms": 2.0,
        "calls": 1.0,
    }
    return {
        "reads": reads,
        "writes": writes,
        "mode": "full",
        "started": "2026-12-06T04:00:00+00:00",
        "finished_in_s": 420,
        "argv": ["bench/api.py"],
        "load_start": "1",
        "load_end": "1",
        "duration": 5,
        "minimal_duration": 2,
        "rounds": 3,
        "server_command": "granian",
        "machine": {"git": "abc1234", "git_dirty": False, "nproc": 2},
        "sizes": {name: {"bytes": 2048} for name in api.ENDPOINTS},
        "dataset": {
            "components": 50,
            "groups": 5,
            "incidents": 1005,
            "updates": 2971,
            "unresolved": 5,
            "subscribers": 500,
            "active_subscribers": 450,
        },
        "profile": {
            "bytes": 360_000,
            "entry_point": "statuspage.wsgi.application",
            "repeats": 50,
            "warm": sample,
            "cold_after_write": sample,
            "cold_after_bump": None,
            "bump_error": "ImportError('no generation')",
            "same_bytes_after_cold": True,
            "profiled_requests": 25,
            "cprofile_wall_ms": 9.0,
            "cold_profiled_requests": 5,
            "cprofile_warm_top": [function],
            "cprofile_warm_own": [function],
            "cprofile_cold_top": [function],
            "cprofile_cold_own": [function],
        },
    }


def test_the_targets_are_met_at_the_issues_numbers_and_missed_short_of_them(api):
    met = api.targets(result(api, share=0.15, p99=99.0, write_p50=29.0))
    missed = api.targets(result(api, share=0.09, p99=100.0, write_p50=30.0))

    assert len(met) == 3 + 5 + 2 + 1
    assert all(t["met"] for t in met)
    assert not any(t["met"] for t in missed[:-1])
    shares = {t["name"]: t["met"] for t in api.targets(result(api, share=0.12, p99=1, write_p50=1))}
    assert [met for name, met in shares.items() if "≥" in name] == [False, False, True]


def test_a_read_after_a_write_that_misses_it_fails_its_target(api):
    judged = api.targets(result(api, share=0.5, p99=10, write_p50=10, violations=1))

    assert [t["name"] for t in judged if not t["met"]] == ["a read after a write shows the write"]


def test_an_endpoint_answering_errors_misses_its_p99_target(api):
    measured = result(api, share=0.5, p99=10, write_p50=10)
    measured["reads"][-1]["beacon"]["non_2xx"] = 3

    missed = [t for t in api.targets(measured) if not t["met"]]
    assert len(missed) == 1 and "3 non-2xx" in missed[0]["measured"]


def test_the_report_quotes_the_run_before_beside_this_one_and_the_targets(api):
    measured = result(api, share=0.2, p99=50.0, write_p50=20.0)
    measured["targets"] = api.targets(measured)

    text = api.render(measured, api.ROOT / "bench" / "results" / "api-x.json")

    assert "11 of 11 met — all of them." in text
    assert "the run of 2026-12-04 at commit 1f19d0c" in text
    # components: 237 / 11,644 req/s before (2.0 %), 20 % now: ten times the share.
    assert "| `…/components` | 2.0% | **20.0%** | 9.8× | 237 |" in text
    # The p99 at 64 connections of the list of 100 incidents: 3,809.6 ms before, 50 now.
    assert "| 3,809.6 ms | **50.0 ms** | 76.2× |" in text
    assert "| PATCH component | 27.6 ms | **20.0 ms** | 1.38× |" in text
    assert "| PATCH incident (post an update)¹ | 84.9 ms | **20.0 ms** | 4.2× |" in text
    assert "No generation to bump here" in text
    assert "| PATCH component | 8.0 | 1.5 | 0.5 | 0.5 | 10.5 |" in text  # CPU per write


def test_writes_alone_are_checked_against_the_write_targets_only(api):
    measured = result(api, share=0.2, p99=50.0, write_p50=35.0)
    measured["reads"] = []  # --writes-only
    assert [(t["name"].split(" at ")[0], t["met"]) for t in api.targets(measured)] == [
        ("PATCH a component", False),
        ("post an incident update", False),
        ("a read after a write shows the write", True),
    ]


def test_an_incident_shows_an_update_only_with_its_status_and_body(api):
    incident = {"status": "monitoring", "incident_updates": [{"body": "Watching."}]}

    assert api._shows_update(incident, "monitoring", "Watching.")
    assert not api._shows_update(incident, "identified", "Watching.")
    assert not api._shows_update(incident, "monitoring", "Fixed.")
    assert not api._shows_update(None, "monitoring", "Watching.")

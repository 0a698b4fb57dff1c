"""Prometheus checks against pytest-httpserver answering /api/v1/query as Prometheus does."""

import pytest

from components.checks import KINDS
from components.checks.runner import run_batch
from components.checks.services import check_run_now
from components.models import CheckKind, ComponentStatus, Verdict
from tests.components.factories import ComponentFactory, HealthCheckFactory

ERROR_RATE = (
    "sum by (job) (rate(http_errors_total[5m])) / sum by (job) (rate(http_requests_total[5m]))"
)


def vector(*series):
    """A real instant-vector answer: [(labels, "value"), …]."""
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": labels, "value": [1700000000.1, value]} for labels, value in series
            ],
        },
    }


@pytest.fixture(autouse=True)
def allow_local_targets(settings):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True


def prometheus_check(httpserver, **fields):
    fields = {"query": ERROR_RATE, "comparison": ">", "threshold": 0.05, **fields}
    return HealthCheckFactory.build(
        kind=CheckKind.PROMETHEUS, url=httpserver.url_for("/prometheus/"), **fields
    )


def answer(httpserver, document, status=200, query=ERROR_RATE):
    httpserver.expect_request(
        "/prometheus/api/v1/query", query_string={"query": query}
    ).respond_with_json(document, status=status)


def run(check):
    [outcome] = run_batch([check])
    return outcome


def test_a_series_over_the_threshold_fails_the_check_and_is_named(httpserver):
    answer(
        httpserver,
        vector(({"job": "api"}, "0.07"), ({"job": "web"}, "0.01")),
    )
    outcome = run(prometheus_check(httpserver))
    assert outcome.verdict == Verdict.DOWN
    assert outcome.status_code == 200
    assert outcome.error == '{job="api"} = 0.07 > 0.05'


def test_series_under_the_threshold_are_up(httpserver):
    answer(httpserver, vector(({"job": "api"}, "0.01"), ({"job": "web"}, "0.05")))
    assert run(prometheus_check(httpserver)).verdict == Verdict.UP


@pytest.mark.parametrize(
    ("comparison", "threshold", "verdict"),
    [
        (">=", 0.05, Verdict.DOWN),
        (">", 0.05, Verdict.UP),
        ("<", 1, Verdict.DOWN),  # e.g. up{job="api"} < 1: a target is down
        ("<=", 0.04, Verdict.UP),
        ("==", 0.05, Verdict.DOWN),
        ("!=", 0.05, Verdict.UP),
    ],
)
def test_each_comparison_is_applied_to_the_value(httpserver, comparison, threshold, verdict):
    answer(httpserver, vector(({"__name__": "ratio", "job": "api"}, "0.05")))
    check = prometheus_check(httpserver, comparison=comparison, threshold=threshold)
    assert run(check).verdict == verdict


def test_a_scalar_result_is_compared_too(httpserver):
    answer(
        httpserver,
        {"status": "success", "data": {"resultType": "scalar", "result": [1700000000.1, "3"]}},
        query="scalar(count(up == 0))",
    )
    outcome = run(prometheus_check(httpserver, query="scalar(count(up == 0))", threshold=0))
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error == "scalar = 3 > 0"


def test_an_empty_result_is_up(httpserver):
    answer(httpserver, vector())
    assert run(prometheus_check(httpserver)).verdict == Verdict.UP


def test_nan_values_are_skipped_and_infinity_compared(httpserver):
    answer(httpserver, vector(({"job": "idle"}, "NaN")))
    assert run(prometheus_check(httpserver, comparison="!=", threshold=0)).verdict == Verdict.UP

    httpserver.clear()
    answer(httpserver, vector(({"job": "idle"}, "NaN"), ({"job": "api"}, "+Inf")))
    outcome = run(prometheus_check(httpserver))
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error == '{job="api"} = inf > 0.05'


def test_many_failing_series_are_counted_after_the_first_three(httpserver):
    answer(httpserver, vector(*(({"__name__": "up", "instance": f"n{i}"}, "0") for i in range(5))))
    outcome = run(prometheus_check(httpserver, comparison="<", threshold=1))
    assert outcome.error == (
        'up{instance="n0"} = 0 < 1; up{instance="n1"} = 0 < 1; up{instance="n2"} = 0 < 1; '
        "and 2 more"
    )


def test_a_prometheus_error_is_down_with_its_text(httpserver):
    answer(
        httpserver,
        {
            "status": "error",
            "errorType": "bad_data",
            "error": 'invalid parameter "query": 1:6: parse error: unexpected <by>',
        },
        status=400,
    )
    outcome = run(prometheus_check(httpserver))
    assert outcome.verdict == Verdict.DOWN
    assert outcome.status_code == 400
    assert outcome.error == (
        'Prometheus bad_data: invalid parameter "query": 1:6: parse error: unexpected <by>'
    )


def test_a_range_vector_is_down_as_the_wrong_kind_of_query(httpserver):
    matrix = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": {"job": "api"}, "values": [[1700000000.1, "1"]]}],
        },
    }
    answer(httpserver, matrix, query="up[5m]")
    outcome = run(prometheus_check(httpserver, query="up[5m]"))
    assert outcome.verdict == Verdict.DOWN
    assert "a matrix result; use a query answering an instant vector or scalar" in outcome.error


def test_an_answer_that_is_not_prometheus_is_down(httpserver):
    httpserver.expect_request("/prometheus/api/v1/query").respond_with_data(
        "<html>Bad gateway</html>", status=502
    )
    outcome = run(prometheus_check(httpserver))
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error == "Status 502, not a Prometheus answer"


def test_a_private_prometheus_is_refused_unless_allowed(httpserver, settings):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = False
    outcome = run(prometheus_check(httpserver))
    assert "127.0.0.1 is a private, loopback or reserved address" in outcome.error
    assert len(httpserver.log) == 0


@pytest.mark.django_db
def test_a_failing_query_gives_the_component_the_checks_down_status(httpserver):
    answer(httpserver, vector(({"job": "api"}, "0.07")))
    check = HealthCheckFactory(
        component=ComponentFactory(name="API"),
        kind=CheckKind.PROMETHEUS,
        url=httpserver.url_for("/prometheus"),
        query=ERROR_RATE,
        comparison=">",
        threshold=0.05,
        failures_before_down=1,
        down_status=ComponentStatus.PARTIAL_OUTAGE,
    )
    check_run_now(check=check)
    check.component.refresh_from_db()
    assert check.component.status == ComponentStatus.PARTIAL_OUTAGE


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({}, {}),
        ({"threshold": 0}, {}),
        ({"query": ""}, {"query": "This check kind needs it."}),
        ({"threshold": None}, {"threshold": "This check kind needs it."}),
        ({"comparison": ""}, {"comparison": "This check kind needs it."}),
        ({"comparison": "=>"}, {"comparison": "One of > >= < <= == !=."}),
        ({"url": "ftp://prometheus"}, {"url": "The Prometheus server's http:// or https:// URL."}),
    ],
)
def test_a_prometheus_check_needs_a_url_query_comparison_and_threshold(fields, errors):
    check = HealthCheckFactory.build(
        kind=CheckKind.PROMETHEUS,
        url="http://prometheus:9090",
        query="up",
        comparison="<",
        threshold=1,
    )
    for field, value in fields.items():
        setattr(check, field, value)
    assert KINDS[CheckKind.PROMETHEUS].validate(check) == errors

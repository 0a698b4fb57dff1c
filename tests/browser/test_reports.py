"""The journey's watchers catch what they look for: CSP violations and console errors on any
page of a watched context, and axe-core's serious and critical violations, readably."""

import pytest

from tests.browser.steps import accessibility_problems, assert_accessible, new_context

CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'"

# Pages that break the policy above, each in its own way.
BREAKING_PAGES = {
    "inline script": ("<script>document.title = 'ran';</script>", "script-src-elem"),
    "inline event handler": ('<img src="/ok.png" alt="" onerror="1">', "script-src-attr"),
    "eval": ("<script src='/eval.js'></script>", "script-src"),
    "inline style element": ("<style>body { color: red; }</style>", "style-src-elem"),
    "style attribute": ('<p style="color: red">Red</p>', "style-src-attr"),
    "image from another origin": ('<img src="https://offsite.example/x.png" alt="">', "img-src"),
}


def serve(httpserver, body, headers=None):
    httpserver.expect_request("/eval.js").respond_with_data(
        "eval('1 + 1');", content_type="text/javascript"
    )
    httpserver.expect_request("/ok.png").respond_with_data(b"", content_type="image/png")
    httpserver.expect_request("/").respond_with_data(
        f"<!doctype html><html lang='en'><head><title>Test</title></head>"
        f"<body><main><h1>Test</h1>{body}</main></body></html>",
        content_type="text/html",
        headers=headers or {},
    )
    return httpserver.url_for("/")


@pytest.mark.parametrize("kind", BREAKING_PAGES)
def test_a_csp_violation_on_a_page_is_reported(browser, reports, httpserver, kind):
    body, directive = BREAKING_PAGES[kind]
    context = new_context(browser, reports)
    page = context.new_page()

    page.goto(serve(httpserver, body, {"Content-Security-Policy": CSP}))
    page.wait_for_load_state("load")
    page.wait_for_function("window.__cspViolations.length > 0")

    assert {v["directive"] for v in reports.csp_violations} == {directive}
    assert page.evaluate("window.__cspViolations.length") == len(reports.csp_violations)
    with pytest.raises(AssertionError, match="Content-Security-Policy violations"):
        reports.assert_clean()
    context.close()


def test_violations_are_kept_after_the_page_navigates_away(browser, reports, httpserver):
    context = new_context(browser, reports)
    page = context.new_page()
    inline_script = BREAKING_PAGES["inline script"][0]
    page.goto(serve(httpserver, inline_script, {"Content-Security-Policy": CSP}))
    page.wait_for_function("window.__cspViolations.length > 0")

    page.goto("about:blank")

    assert len(reports.csp_violations) == 1
    context.close()


def test_the_same_page_without_a_policy_reports_nothing(browser, reports, httpserver):
    context = new_context(browser, reports)
    page = context.new_page()

    page.goto(serve(httpserver, BREAKING_PAGES["inline script"][0]))

    assert page.title() == "ran"
    reports.assert_clean()
    context.close()


def test_a_script_error_is_reported(browser, reports, httpserver):
    context = new_context(browser, reports)
    page = context.new_page()

    page.goto(serve(httpserver, "<script>console.error('broken'); null.x;</script>"))

    with pytest.raises(AssertionError, match="broken"):
        reports.assert_clean()
    assert any("null" in error for error in reports.console_errors)
    context.close()


# Each is a serious or critical axe-core rule: (markup, rule id, a selector axe names).
INACCESSIBLE = {
    "image without alt text": ('<img src="/ok.png" id="logo">', "image-alt", "#logo"),
    "button without a name": ('<button id="go"></button>', "button-name", "#go"),
    "link without a name": ('<a href="/" id="home"></a>', "link-name", "#home"),
    "input without a label": ('<input type="text" id="q">', "label", "#q"),
    "description that is not on the page": (
        '<label for="e">Email</label><input id="e" aria-describedby="e-error">',
        "aria-valid-attr-value",
        "#e",
    ),
    "faint text": (
        '<p id="faint" style="color: #bbb; background: #fff">Hard to read</p>',
        "color-contrast",
        "#faint",
    ),
}


@pytest.mark.parametrize("kind", INACCESSIBLE)
def test_axe_reports_a_serious_violation_with_its_rule_and_where(
    browser, reports, httpserver, axe, kind
):
    body, rule, target = INACCESSIBLE[kind]
    context = new_context(browser, reports)
    page = context.new_page()
    page.goto(serve(httpserver, body))

    with pytest.raises(AssertionError) as failure:
        assert_accessible(page, axe)

    message = str(failure.value)
    assert f" {rule} (" in message
    assert f"at {target}:" in message
    assert page.url in message
    context.close()


def test_axe_is_injected_past_a_strict_policy(browser, reports, httpserver, axe):
    context = new_context(browser, reports)
    page = context.new_page()
    page.goto(serve(httpserver, "<p>Fine.</p>", {"Content-Security-Policy": CSP}))

    assert accessibility_problems(page, axe) == []
    assert page.evaluate("typeof axe.run") == "function"
    reports.assert_clean()
    context.close()

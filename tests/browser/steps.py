"""Steps of the journey through Beacon in a real browser, small enough to be put together.

A visitor and a staff member each get a browser context of their own. Every context made
here is watched (`Reports`): Content-Security-Policy violations and console errors from any
of its pages are kept, and a journey ends with `reports.assert_clean()`.
"""

import os
import re
import shutil
import subprocess
import time
from base64 import b32decode
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.urls import reverse
from django_otp.oath import totp
from playwright.sync_api import Browser, BrowserContext, Page, expect

HERE = Path(__file__).resolve().parent
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"

# Set to a directory (docs/screenshots) to keep screenshots of the run; unset, nothing is written.
SCREENSHOTS = os.environ.get("BEACON_SCREENSHOTS", "")

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 740}
# Every public page is checked at each of these: (name, viewport, colour scheme).
VARIANTS = [
    ("desktop-light", DESKTOP, "light"),
    ("desktop-dark", DESKTOP, "dark"),
    ("phone-light", PHONE, "light"),
    ("phone-dark", PHONE, "dark"),
]

# Runs in every page before its own scripts; a page's CSP does not apply to it. A violation
# is kept in the page (window.__cspViolations) and handed to Python, which outlives the page.
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const violation = {
    page: location.href,
    directive: event.violatedDirective,
    blocked: event.blockedURI,
    source: event.sourceFile + ":" + event.lineNumber,
    sample: event.sample,
  };
  window.__cspViolations.push(violation);
  window.__beaconCspViolation(violation);
});
"""


@dataclass
class Reports:
    """What the browser complained about, on every page of every context it watches."""

    csp_violations: list = field(default_factory=list)
    console_errors: list = field(default_factory=list)

    def watch(self, context: BrowserContext) -> BrowserContext:
        context.expose_binding(
            "__beaconCspViolation", lambda source, violation: self.csp_violations.append(violation)
        )
        context.add_init_script(CSP_LISTENER)
        context.on("console", self._on_console)
        context.on("weberror", lambda error: self.console_errors.append(str(error.error)))
        return context

    def _on_console(self, message) -> None:
        url = message.location.get("url", "")
        # The browser asks for /favicon.ico by itself on pages without an icon (the admin's).
        if message.type == "error" and not url.endswith("/favicon.ico"):
            self.console_errors.append(f"{url}: {message.text}")

    def assert_clean(self, *, expected_errors: tuple[str, ...] = ()) -> None:
        """No CSP violation; no console error but those containing one of `expected_errors`."""
        csp = self.csp_violations
        console = [e for e in self.console_errors if not any(x in e for x in expected_errors)]
        assert csp == [], f"Content-Security-Policy violations: {csp}"
        assert console == [], f"Errors in the browser console: {console}"


def new_context(
    browser: Browser, reports: Reports, *, viewport=DESKTOP, color_scheme="light", **options
) -> BrowserContext:
    context = browser.new_context(viewport=viewport, color_scheme=color_scheme, **options)
    return reports.watch(context)


# Looking


def visitor_opens_page(context: BrowserContext, url: str) -> Page:
    page = context.new_page()
    page.goto(url)
    return page


def screenshot(page: Page, name: str) -> None:
    """The visible part of the page (not the whole length: they go in the repository)."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), animations="disabled")


def assert_fits_width(page: Page) -> None:
    width = page.viewport_size["width"]
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{page.url} is {scroll_width} px wide in a {width} px window"


def axe_source() -> str:
    """axe-core from tests/browser/node_modules, installed with `npm ci` when it is missing."""
    if not AXE.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("axe-core is missing and so is npm to install it (npm ci in tests/browser)")
        subprocess.run(
            [npm, "ci", "--prefix", str(HERE), "--no-audit", "--no-fund", "--silent"],
            check=True,
            timeout=300,
        )
    return AXE.read_text()


AXE_RUN = """async () => {
    const results = await axe.run(document, {resultTypes: ["violations", "incomplete"]});
    const undecided = results.incomplete.filter((v) => v.id !== "color-contrast");
    const why = (node) => node.failureSummary
        || [...node.any, ...node.all].map((check) => check.message).join("; ");
    return results.violations.concat(undecided)
        .filter((v) => ["serious", "critical"].includes(v.impact))
        .map((v) => ({
            id: v.id,
            impact: v.impact,
            help: v.help,
            nodes: v.nodes.map((node) => ({target: node.target.join(" "), summary: why(node)})),
        }));
}"""


def accessibility_problems(page: Page, axe: str) -> list[str]:
    """axe-core's serious and critical findings on the page, one readable line per node.

    Those axe could not decide count too (an aria-describedby naming a missing id is one),
    except colour contrast it cannot compute: text over an image or a gradient, arrows.
    axe is evaluated through the DevTools protocol, which the page's CSP does not govern
    (a <script> tag would be refused by a strict one).
    """
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe)
    findings = page.evaluate(AXE_RUN)
    return [
        f"{v['impact']} {v['id']} ({v['help']}) at {node['target']}: {node['summary']}"
        for v in findings
        for node in v["nodes"]
    ]


def assert_accessible(page: Page, axe: str) -> None:
    problems = accessibility_problems(page, axe)
    assert problems == [], f"axe-core on {page.url}:\n" + "\n".join(problems)


# The visitor


def visitor_expands_group(page: Page, name: str) -> None:
    group = page.locator("details.group", has=page.locator("summary", has_text=name))
    group.locator("summary").click()
    expect(group).to_have_attribute("open", "")


def visitor_reads_incident(page: Page, name: str, updates: list[str]) -> None:
    page.get_by_role("link", name=name).first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    for body in updates:
        expect(page.locator("#main")).to_contain_text(body)


def poll_interval_ms(page: Page) -> int:
    """How often the page asks for news, read from its htmx trigger (`every 30s`)."""
    trigger = page.locator("#status-body").get_attribute("hx-trigger") or ""
    match = re.search(r"every (\d+)(m?s)", trigger)
    assert match, f"#status-body does not poll: hx-trigger={trigger!r}"
    return int(match.group(1)) * (1 if match.group(2) == "ms" else 1000)


def visitor_keeps_page_open(context: BrowserContext, url: str) -> Page:
    """A page whose clock the test moves (it also runs on its own), to see the next poll."""
    page = context.new_page()
    page.clock.install()
    page.goto(url)
    page.evaluate("window.stillTheSamePage = true")
    return page


def visitor_sees_without_reload(page: Page, text: str) -> None:
    """`text`, not on the page kept open (`visitor_keeps_page_open` under 30 s ago), shows up
    at its next poll, without a reload."""
    live = page.locator("#status-body")
    expect(live).not_to_contain_text(text, timeout=0)
    page.clock.run_for(poll_interval_ms(page))
    expect(live).to_contain_text(text)
    assert page.evaluate("window.stillTheSamePage") is True


def visitor_subscribes(page: Page, email: str) -> None:
    page.get_by_role("link", name="Subscribe to updates").click()
    panel = page.locator("#subscribe-panel")
    panel.get_by_label("Email address").fill(email)
    panel.get_by_role("button", name="Subscribe").click()
    expect(panel).to_contain_text("Check your inbox")


def visitor_confirms(context: BrowserContext, link: str) -> Page:
    page = visitor_opens_page(context, link)
    page.get_by_role("button", name="Confirm subscription").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You're subscribed")
    return page


def visitor_unsubscribes(context: BrowserContext, link: str) -> Page:
    """From the link in an email: one click on the page it opens."""
    page = visitor_opens_page(context, link)
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")
    return page


# Email, as the local SMTP server received it


def wait_for_email(smtp, to: str, subject: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in smtp.to(to):
            if subject in message["Subject"]:
                return message
        time.sleep(0.1)
    received = [(m["To"], m["Subject"]) for m in smtp.messages]
    pytest.fail(f"no email to {to} about {subject!r} within {timeout} s; received: {received}")


def link_in(message, path: str) -> str:
    text = message.get_body(preferencelist=("plain",)).get_content()
    match = re.search(rf"https?://\S+{re.escape(path)}\S+/", text)
    assert match, f"no {path} link in the email:\n{text}"
    return match.group(0)


# Staff


STAFF_PASSWORD = "a long staff passphrase 42"


def authenticator_code(secret: str, *, steps_ahead: int = 0) -> str:
    """What an authenticator app shows for `secret` (base32, as the set-up page prints it).
    A code is taken once: `steps_ahead=1` is the next one, as a phone whose clock runs a
    little fast shows it (django-otp accepts one step either way)."""
    key = b32decode(secret.replace(" ", ""))
    return f"{totp(key, t0=0, step=30, digits=6, drift=steps_ahead):06d}"


def staff_signs_in_with_password(context: BrowserContext, live_server, username: str) -> Page:
    page = context.new_page()
    page.goto(live_server.url + "/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(STAFF_PASSWORD)
    page.locator("input[type=submit]").click()
    return page


def staff_enrols_authenticator_app(context: BrowserContext, live_server, username: str) -> str:
    """First sign-in of someone without a second factor: the password, then setting up an
    authenticator app from the secret the page shows; returns that secret."""
    page = staff_signs_in_with_password(context, live_server, username)
    expect(page.locator("h1", has_text="Set up two-factor authentication")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text()
    page.locator("#id_code").fill(authenticator_code(secret))
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#backup-codes li")).to_have_count(10)
    screenshot(page, "staff-backup-codes")
    page.get_by_role("link", name="I have kept them: continue").click()
    expect(page.locator("#site-name")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/admin/$"))
    page.close()
    return secret


def staff_signs_out(context: BrowserContext, live_server) -> None:
    page = context.new_page()
    page.goto(live_server.url + "/admin/")
    page.locator("#logout-form button").click()
    page.goto(live_server.url + "/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    page.close()


def staff_signs_in_with_code(
    context: BrowserContext, live_server, username: str, secret: str
) -> None:
    """The password, then a code from the app: the admin opens only after both."""
    page = staff_signs_in_with_password(context, live_server, username)
    expect(page).to_have_url(re.compile(r"/admin/two-factor/"))
    page.goto(live_server.url + "/admin/incidents/incident/")  # skipping the second step
    expect(page).to_have_url(re.compile(r"/admin/two-factor/"))
    screenshot(page, "staff-second-step")
    page.locator("#id_code").fill(authenticator_code(secret, steps_ahead=1))
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/admin/incidents/incident/$"))
    page.close()


def staff_context(browser: Browser, reports: Reports, live_server, user) -> BrowserContext:
    """A browser in which `user` (staff, without a second factor yet) signed in for real:
    the password, then setting up an authenticator app."""
    user.set_password(STAFF_PASSWORD)
    user.save()
    context = new_context(browser, reports)
    staff_enrols_authenticator_app(context, live_server, user.get_username())
    return context


def staff_posts_incident(
    context: BrowserContext, live_server, *, name: str, body: str, component: str, status: str
) -> None:
    """A new incident from the admin's add form, one component marked, subscribers told."""
    page = context.new_page()
    page.goto(live_server.url + reverse("admin:incidents_incident_add"))
    page.locator("#id_name").fill(name)
    page.locator("#id_body").fill(body)
    # The admin writes its labels "API:".
    page.get_by_label(re.compile(rf"^{re.escape(component)}:?$")).select_option(label=status)
    page.locator("input[type=submit][name=_save]").click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    page.close()


def attacker_is_locked_out(
    browser: Browser, reports: Reports, live_server, username: str, failures: int
) -> Page:
    """Wrong passwords until the lock, then the right one: refused all the same."""
    context = new_context(browser, reports)
    page = context.new_page()
    for attempt in range(failures):
        page.goto(live_server.url + "/admin/login/")
        page.locator("#id_username").fill(username)
        page.locator("#id_password").fill(f"guess number {attempt}")
        page.locator("input[type=submit]").click()
    page.goto(live_server.url + "/admin/login/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(STAFF_PASSWORD)
    page.locator("input[type=submit]").click()
    expect(page.locator("h1", has_text="Too many failed sign-ins")).to_be_visible()
    return page


def staff_posts_update(
    context: BrowserContext, live_server, incident, *, status: str, body: str
) -> None:
    """Through the incident's admin page, by clicking, with subscribers notified."""
    page = context.new_page()
    page.goto(live_server.url + reverse("admin:incidents_incident_change", args=[incident.pk]))
    page.locator("#id_status").select_option(label=status)
    page.locator("#id_body").fill(body)
    page.locator("#id_deliver_notifications").check()
    page.locator("input[type=submit][name=_continue]").click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    page.close()

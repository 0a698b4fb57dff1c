""" "Notify me in this browser" in Debian's Chromium: the service worker registers at /sw.js
for the whole page, and the control shows only where push notifications can work.

Headless Chromium has no push service to reach here (subscribe() needs Google's, offline),
so a real subscription is not made in the browser: one test shows the control saying so,
and one stands in for the push service (PushManager gives the subscription a browser would)
to follow the control's posts to the server. A push handed to the worker through the
DevTools protocol shows the notification the channel's message describes, and the worker's
`pushsubscriptionchange` listener, handed a renewal the same way, moves the subscription to
its new endpoint (Chromium never fires that event itself here). The push round
trip (VAPID, encryption, 410) is test_push.py's, with a local push service and the keys a
browser makes.
"""

import base64
import json

import pytest
from playwright.sync_api import expect

from components.models import ComponentStatus
from incidents.notify.channels.push import push_message
from incidents.notify.models import NotificationEvent, Subscriber
from tests.components.factories import ComponentFactory
from tests.incidents.factories import open_incident
from tests.incidents.notify.push_service import Browser

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def components(page):
    return ComponentFactory(name="API"), ComponentFactory(name="Chat")


def console_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    return errors


def test_the_service_worker_registers_at_the_root_and_the_control_appears(
    live_server, browser, components
):
    context = browser.new_context(permissions=["notifications"])
    page = context.new_page()
    errors = console_errors(page)
    page.goto(live_server.url + "/")

    registration = page.evaluate(
        "navigator.serviceWorker.ready.then(r => [r.active.scriptURL, r.scope])"
    )
    assert registration == [live_server.url + "/sw.js", live_server.url + "/"]
    control = page.locator("#push-control")
    expect(control).to_be_visible()
    summary = control.get_by_text("Notify me in this browser")
    expect(summary).to_contain_text("Off")  # no subscription in this browser yet
    summary.click()
    expect(control.get_by_role("checkbox", name="API")).to_be_visible()
    expect(control.get_by_role("button", name="Turn on notifications")).to_be_visible()
    expect(control.get_by_role("button", name="Turn off notifications")).to_be_hidden()
    assert errors == []  # no CSP violation: worker-src 'self' lets the worker in
    context.close()


def test_turning_on_without_a_reachable_push_service_says_so_and_stores_nothing(
    live_server, browser, components
):
    context = browser.new_context(permissions=["notifications"])
    page = context.new_page()
    page.goto(live_server.url + "/")
    control = page.locator("#push-control")
    control.get_by_text("Notify me in this browser").click()
    control.get_by_role("checkbox", name="Chat").check()

    control.get_by_role("button", name="Turn on notifications").click()

    expect(control.get_by_role("status")).to_have_text(
        "Notifications could not be turned on. Try again later.", timeout=20_000
    )
    assert not Subscriber.objects.exists()
    context.close()


def test_a_browser_without_push_never_sees_the_control(live_server, browser, components):
    context = browser.new_context()
    context.add_init_script("delete window.PushManager;")
    page = context.new_page()
    page.goto(live_server.url + "/")

    expect(page.get_by_role("link", name="Subscribe to updates")).to_be_visible()
    page.wait_for_load_state("load")
    expect(page.locator("#push-control")).to_be_hidden()
    context.close()


def test_without_javascript_the_page_works_and_the_control_stays_hidden(
    live_server, browser, components
):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(live_server.url + "/")

    expect(page.get_by_role("link", name="Subscribe to updates")).to_be_visible()
    expect(page.locator("#push-control")).to_be_hidden()
    context.close()


# The one stand-in: the browser's push service. PushManager gives the subscription a browser
# would (keys made as a browser makes them); everything else is the page's own code.
FAKE_PUSH_SERVICE = """
(() => {
  const made = %s;
  let current = null;
  const subscription = {
    endpoint: made.endpoint,
    toJSON: () => made,
    unsubscribe: () => { current = null; return Promise.resolve(true); },
  };
  PushManager.prototype.getSubscription = () => Promise.resolve(current);
  PushManager.prototype.subscribe = (options) => {
    window.__applicationServerKey = Array.from(new Uint8Array(options.applicationServerKey));
    current = subscription;
    return Promise.resolve(subscription);
  };
})();
"""


def test_a_visitor_turns_notifications_on_for_a_component_and_off_again(
    live_server, browser, components, settings, client
):
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = True  # the endpoint below is on 127.0.0.1
    api, chat = components
    made = Browser().subscription("https://127.0.0.1:9/push/" + "x" * 40)
    context = browser.new_context(permissions=["notifications"])
    context.add_init_script(FAKE_PUSH_SERVICE % json.dumps(made))
    page = context.new_page()
    page.goto(live_server.url + "/")
    control = page.locator("#push-control")
    summary = control.get_by_text("Notify me in this browser")
    summary.click()
    control.get_by_role("checkbox", name="Chat").check()

    control.get_by_role("button", name="Turn on notifications").click()

    expect(control.get_by_role("status")).to_contain_text("Notifications are on in this browser.")
    expect(summary).to_contain_text("On")
    subscriber = Subscriber.objects.get()
    assert subscriber.endpoint == made["endpoint"]
    assert list(subscriber.components.all()) == [chat]
    served = client.get("/push/key/").json()["public_key"]
    used = bytes(page.evaluate("window.__applicationServerKey"))
    assert base64.urlsafe_b64encode(used).rstrip(b"=").decode() == served

    control.get_by_role("button", name="Turn off notifications").click()

    expect(control.get_by_role("status")).to_contain_text("Notifications are off in this browser.")
    expect(summary).to_contain_text("Off")
    assert not Subscriber.objects.exists()
    context.close()


def test_the_worker_shows_what_the_push_channel_sends(live_server, browser, components, page):
    """The push is handed to the worker through the DevTools protocol (as the push service
    would hand it, decrypted), with the very message the push channel makes for an update."""
    page.url = live_server.url
    page.save()
    api, _ = components
    open_incident(
        name="API errors",
        body="Requests fail for some users.",
        component_statuses={api: ComponentStatus.MAJOR_OUTAGE},
    )
    sent = push_message(NotificationEvent.objects.get())
    context = browser.new_context(permissions=["notifications"])
    tab = context.new_page()
    tab.goto(live_server.url + "/")
    tab.evaluate("navigator.serviceWorker.ready")
    devtools = context.new_cdp_session(tab)
    registrations: list[dict] = []
    devtools.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: registrations.extend(event["registrations"]),
    )
    devtools.send("ServiceWorker.enable")
    for _ in range(50):
        if registrations:
            break
        tab.wait_for_timeout(100)

    # A push delivered while the worker is still starting can be dropped by the browser on a
    # busy machine: deliver again until it shows (one tag, so never two notifications).
    shown = []
    for _ in range(3):
        devtools.send(
            "ServiceWorker.deliverPushMessage",
            {
                "origin": live_server.url,
                "registrationId": registrations[0]["registrationId"],
                "data": json.dumps(sent),
            },
        )
        shown = tab.evaluate(
            """navigator.serviceWorker.ready.then(async (registration) => {
              for (let i = 0; i < 60; i++) {
                const shown = await registration.getNotifications();
                if (shown.length) return shown.map((n) => [n.title, n.body, n.tag, n.data.url]);
                await new Promise((done) => setTimeout(done, 50));
              }
              return [];
            })"""
        )
        if shown:
            break
    assert shown == [[sent["title"], sent["body"], sent["tag"], sent["url"]]]
    assert "API errors" in sent["title"] and "Requests fail for some users." in sent["body"]
    assert sent["url"].startswith(live_server.url + "/incidents/")
    context.close()


# Headless Chromium never fires `pushsubscriptionchange` (it has no push service to renew
# with), and the event cannot be made with its own constructor there. So the worker's own
# listener is given an event through the DevTools protocol (Playwright's evaluate in the
# service worker) with the subscriptions a browser would hand it and a waitUntil that keeps
# what the listener waits on: the listener, its fetches and the server are the real ones.
RENEW_IN_WORKER = """async ([old, renewed, withOptions]) => {
  const standIn = (made, options) => ({ endpoint: made.endpoint, options, toJSON: () => made });
  self.registration.pushManager.subscribe = (options) => {
    self.__subscribedWith = options.applicationServerKey;
    return Promise.resolve(standIn(renewed, options));
  };
  const event = new Event("pushsubscriptionchange");
  const waited = [];
  const oldOptions = { userVisibleOnly: true, applicationServerKey: withOptions ? "given" : null };
  Object.defineProperties(event, {
    oldSubscription: { value: standIn(old, oldOptions) },
    newSubscription: { value: withOptions === null ? standIn(renewed, {}) : null },
    waitUntil: { value: (promise) => waited.push(promise) },
  });
  self.dispatchEvent(event);
  const answers = await Promise.all(waited);
  return {
    waited: waited.length,
    answers: await Promise.all(answers.map(async (a) => [a.status, await a.json()])),
    subscribedWith: self.__subscribedWith === undefined ? null : self.__subscribedWith,
  };
}"""


def worker_of(context, url):
    tab = context.new_page()
    tab.goto(url + "/")
    tab.evaluate("navigator.serviceWorker.ready")
    for _ in range(50):
        if context.service_workers:
            return context.service_workers[0]
        tab.wait_for_timeout(100)
    raise AssertionError("no service worker")


@pytest.mark.parametrize(
    ("with_options", "subscribed_with"),
    [
        (None, None),  # the browser gives the new subscription (newSubscription)
        (True, "given"),  # the worker subscribes again with the old subscription's key
        (False, "served"),  # ... or with the key the page serves at /push/key/
    ],
)
def test_the_worker_moves_a_renewed_subscription_to_its_new_endpoint(
    live_server, browser, components, settings, client, with_options, subscribed_with
):
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = True  # the endpoints below are on 127.0.0.1
    api, chat = components
    before, after = Browser(), Browser()
    old = before.subscription("https://127.0.0.1:9/push/old-" + "x" * 40)
    renewed = after.subscription("https://127.0.0.1:9/push/new-" + "y" * 40)
    subscribed = client.post(
        "/push/subscribe/",
        {**old, "components": [chat.public_id]},
        content_type="application/json",
        HTTP_SEC_FETCH_SITE="same-origin",
    )
    assert subscribed.status_code == 201
    context = browser.new_context(permissions=["notifications"])
    worker = worker_of(context, live_server.url)

    outcome = worker.evaluate(RENEW_IN_WORKER, [old, renewed, with_options])

    assert outcome["waited"] == 1
    assert outcome["answers"] == [[200, {"resubscribed": True}]]
    served = client.get("/push/key/").json()["public_key"]
    expected_key = {None: None, "given": "given", "served": served}[subscribed_with]
    assert outcome["subscribedWith"] == expected_key
    subscriber = Subscriber.objects.get()
    assert subscriber.endpoint == renewed["endpoint"]
    assert subscriber.push_auth == renewed["keys"]["auth"]
    assert list(subscriber.components.all()) == [chat]
    context.close()


def test_the_worker_cannot_move_a_subscription_whose_secret_it_lacks(
    live_server, browser, components, settings, client
):
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = True
    old = Browser().subscription("https://127.0.0.1:9/push/old-" + "x" * 40)
    client.post(
        "/push/subscribe/", old, content_type="application/json", HTTP_SEC_FETCH_SITE="same-origin"
    )
    forged = {**old, "keys": {**old["keys"], "auth": Browser().subscription("")["keys"]["auth"]}}
    renewed = Browser().subscription("https://127.0.0.1:9/push/new-" + "y" * 40)
    context = browser.new_context(permissions=["notifications"])
    worker = worker_of(context, live_server.url)

    outcome = worker.evaluate(RENEW_IN_WORKER, [forged, renewed, None])

    ((status, answer),) = outcome["answers"]
    assert status == 400 and answer["code"] == "unknown subscription"
    assert Subscriber.objects.get().endpoint == old["endpoint"]
    context.close()

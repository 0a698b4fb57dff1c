"""The endpoints behind "Notify me in this browser": the service worker, the VAPID key, and
subscribing and unsubscribing a browser, against hostile posts as much as honest ones."""

import json

import pytest
from django.urls import reverse

from incidents.notify.models import Channel, Subscriber, SubscriberState
from statuspage.lib.security_headers import CONTENT_SECURITY_POLICY
from tests.components.factories import ComponentFactory
from tests.incidents.notify.push_service import Browser, b64url

pytestmark = pytest.mark.django_db

SUBSCRIBE = "/push/subscribe/"
UNSUBSCRIBE = "/push/unsubscribe/"


@pytest.fixture(autouse=True)
def loopback_push_service(settings, tmp_path):
    """Push endpoints on 127.0.0.1 (https, never connected to here) are let in unless a test
    says otherwise, as for webhooks' tests."""
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = True
    settings.VAR_DIR = tmp_path


def endpoint(n=1):
    return f"https://127.0.0.1:9/push/v2/{'x' * 40}{n}"


def post(client, url, body, **headers):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    headers.setdefault("HTTP_SEC_FETCH_SITE", "same-origin")
    headers.setdefault("HTTP_ORIGIN", "http://testserver")
    return client.post(url, data, content_type="application/json", **headers)


def subscribe_body(browser=None, n=1, components=()):
    body = (browser or Browser()).subscription(endpoint(n))
    body["components"] = list(components)
    return body


def test_the_service_worker_is_served_at_the_root_as_javascript(client):
    response = client.get("/sw.js")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    assert response["Cache-Control"] == "no-cache"
    script = response.content.decode()
    assert 'addEventListener("push"' in script
    assert 'addEventListener("notificationclick"' in script
    assert 'addEventListener("pushsubscriptionchange"' in script
    assert "worker-src 'self'" in response["Content-Security-Policy"]


def test_the_policy_allows_a_worker_from_this_origin_only():
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["worker-src"] == "'self'"
    assert directives["script-src"] == "'self'"


def test_the_public_key_is_the_same_for_everybody_and_a_p256_point(client):
    first = client.get(reverse("push-key"))
    second = client.get(reverse("push-key"))

    assert first.json() == second.json()
    key = first.json()["public_key"]
    assert len(key) == 87 and key.startswith("B")  # 65 bytes, 0x04 first
    assert first["Cache-Control"] == "public, max-age=3600"


def test_a_browser_subscribes_to_chosen_components_without_an_account(client):
    api, web = ComponentFactory(name="API"), ComponentFactory(name="Web")
    browser = Browser()

    response = post(client, SUBSCRIBE, subscribe_body(browser, components=[api.public_id]))

    assert response.status_code == 201
    assert response.json() == {"subscribed": True, "components": 1}
    subscriber = Subscriber.objects.get()
    assert subscriber.channel == Channel.PUSH
    assert subscriber.state == SubscriberState.ACTIVE
    assert subscriber.email == ""
    assert subscriber.endpoint == endpoint()
    assert (subscriber.push_p256dh, subscriber.push_auth) == (browser.p256dh, b64url(browser.auth))
    assert not subscriber.all_components
    assert list(subscriber.components.all()) == [api]
    assert web not in subscriber.components.all()
    assert response["Cache-Control"] == "no-store"


def test_subscribing_again_from_the_same_browser_replaces_its_choice(client):
    api = ComponentFactory()
    browser = Browser()
    post(client, SUBSCRIBE, subscribe_body(browser, components=[api.public_id]))

    response = post(client, SUBSCRIBE, subscribe_body(browser))

    assert response.status_code == 201
    subscriber = Subscriber.objects.get()
    assert subscriber.all_components
    assert not subscriber.components.exists()


def test_a_browser_unsubscribes_with_its_endpoint_and_auth_secret(client):
    browser = Browser()
    post(client, SUBSCRIBE, subscribe_body(browser))
    keys = browser.subscription("")["keys"]

    wrong = post(client, UNSUBSCRIBE, {"endpoint": endpoint(), "keys": {"auth": b64url(b"1" * 16)}})
    assert wrong.json() == {"unsubscribed": False}
    assert Subscriber.objects.exists()

    right = post(client, UNSUBSCRIBE, {"endpoint": endpoint(), "keys": {"auth": keys["auth"]}})
    assert right.status_code == 200
    assert right.json() == {"unsubscribed": True}
    assert not Subscriber.objects.exists()


def _with(body, **changes):
    keys = dict(body["keys"])
    for name in ("p256dh", "auth"):
        if name in changes:
            keys[name] = changes.pop(name)
    return {**body, "keys": keys, **changes}


GOOD = Browser().subscription(endpoint())
NOT_ON_CURVE = b64url(b"\x04" + b"\x01" * 64)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_with(GOOD, endpoint="http://127.0.0.1:9/push"), "must be reached over https"),
        (_with(GOOD, endpoint="https://127.0.0.1/" + "a" * 2000), "too long"),
        (_with(GOOD, endpoint=None), "must be reached over https"),
        (_with(GOOD, endpoint="javascript:alert(1)"), "must be reached over https"),
        (_with(GOOD, p256dh="short"), "keys are not valid"),
        (_with(GOOD, p256dh=NOT_ON_CURVE), "keys are not valid"),
        (_with(GOOD, p256dh=b64url(b"\x04" * 65) + "!!!!"), "keys are not valid"),
        (_with(GOOD, auth=b64url(b"a" * 15)), "keys are not valid"),
        (_with(GOOD, auth=12345), "keys are not valid"),
        ({"endpoint": endpoint()}, "has no keys"),
        (_with(GOOD, components="all"), "Choose components from the list"),
        (_with(GOOD, components=["nosuchthing"]), "Choose components from the list"),
        (_with(GOOD, components=[{"id": 1}]), "Choose components from the list"),
        ([1, 2, 3], "could not be read"),
        ("{not json", "could not be read"),
        (b"\xff\xfe\x00", "could not be read"),
    ],
)
def test_a_malformed_subscription_is_refused_with_a_message_and_stores_nothing(
    client, body, message
):
    response = post(client, SUBSCRIBE, body)

    assert response.status_code == 400
    assert message in response.json()["error"]
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "10.0.0.8", "[::1]", "169.254.169.254", "[::ffff:192.168.1.1]", "localhost"],
)
def test_a_push_service_at_a_private_address_is_refused(client, settings, host):
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = False
    body = _with(GOOD, endpoint=f"https://{host}/push/abc")

    response = post(client, SUBSCRIBE, body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error == "This browser's push service cannot be used."
    assert "WEBHOOKS_ALLOW_PRIVATE" not in error  # no settings told to visitors
    assert not Subscriber.objects.exists()


def test_the_metadata_address_is_refused_even_when_private_ones_are_allowed(client):
    response = post(client, SUBSCRIBE, _with(GOOD, endpoint="https://169.254.169.254/push"))

    assert response.status_code == 400
    assert not Subscriber.objects.exists()


def test_a_huge_body_is_refused_unread(client):
    body = {**GOOD, "components": ["x" * 100] * 1000}

    response = post(client, SUBSCRIBE, body)

    assert response.status_code == 400
    assert "too large" in response.json()["error"]
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_SEC_FETCH_SITE": "cross-site"},
        {"HTTP_SEC_FETCH_SITE": "same-site"},
        {"HTTP_ORIGIN": "https://evil.example"},
        {"HTTP_ORIGIN": "null"},
    ],
)
@pytest.mark.parametrize("url", [SUBSCRIBE, UNSUBSCRIBE])
def test_a_post_from_another_site_is_refused(client, headers, url):
    browser = Browser()
    Subscriber.objects.create(
        channel=Channel.PUSH,
        endpoint=endpoint(),
        push_p256dh=browser.p256dh,
        push_auth=b64url(browser.auth),
        state=SubscriberState.ACTIVE,
    )

    response = post(client, url, subscribe_body(browser), **headers)

    assert response.status_code == 403
    assert Subscriber.objects.count() == 1
    assert Subscriber.objects.get().all_components


def test_too_many_posts_from_one_address_are_limited(client, settings):
    settings.BEACON_SUBSCRIBE_LIMIT_PER_IP = 3
    statuses = [
        post(client, SUBSCRIBE, subscribe_body(n=n), REMOTE_ADDR="203.0.113.9").status_code
        for n in range(5)
    ]

    assert statuses == [201, 201, 201, 429, 429]
    limited = post(client, SUBSCRIBE, subscribe_body(n=9), REMOTE_ADDR="203.0.113.9")
    assert int(limited["Retry-After"]) > 0
    assert Subscriber.objects.count() == 3
    assert (
        post(client, SUBSCRIBE, subscribe_body(n=7), REMOTE_ADDR="203.0.113.10").status_code == 201
    )


def test_only_posts_subscribe(client):
    assert client.get(SUBSCRIBE).status_code == 405
    assert client.get(UNSUBSCRIBE).status_code == 405


def test_the_status_page_carries_the_control_hidden_with_the_components(client, page):
    api = ComponentFactory(name="API")

    html = client.get("/").content.decode()

    control = html[html.index('id="push-control"') :]
    assert control.split(">", 1)[0].endswith(" hidden")  # shown by push.js where supported
    assert f'name="components" value="{api.public_id}"' in control
    assert "Notify me in this browser" in control
    assert "js/push." in html


RESUBSCRIBE = "/push/resubscribe/"


def renewal_body(old_browser, new_browser, old_n=1, new_n=2, **replaces):
    body = new_browser.subscription(endpoint(new_n))
    body["replaces"] = {
        "endpoint": endpoint(old_n),
        "auth": old_browser.subscription("")["keys"]["auth"],
        **replaces,
    }
    return body


def test_a_renewed_browser_subscription_moves_with_its_components(client):
    api = ComponentFactory()
    before, after = Browser(), Browser()
    post(client, SUBSCRIBE, subscribe_body(before, components=[api.public_id]))

    response = post(client, RESUBSCRIBE, renewal_body(before, after))
    again = post(client, RESUBSCRIBE, renewal_body(before, after))

    assert response.status_code == again.status_code == 200
    assert response.json() == {"resubscribed": True}
    assert response["Cache-Control"] == "no-store"
    subscriber = Subscriber.objects.get()
    assert subscriber.endpoint == endpoint(2)
    assert (subscriber.push_p256dh, subscriber.push_auth) == (after.p256dh, b64url(after.auth))
    assert list(subscriber.components.all()) == [api]


def refused_as_unknown(response):
    assert response.status_code == 400
    assert response.json() == {
        "error": "The subscription could not be read.",
        "code": "unknown subscription",
    }
    return True


@pytest.mark.parametrize(
    "replaces",
    [
        {"auth": b64url(b"z" * 16)},  # another secret
        {"auth": ""},
        {"auth": None},
        {"auth": ["a"]},
        {"endpoint": endpoint(3)},  # nobody's
        {"endpoint": endpoint(1) + "/"},
        {"endpoint": None},
        {"endpoint": "https://127.0.0.1/" + "a" * 5000},
    ],
)
def test_a_renewal_without_the_old_endpoint_and_secret_is_refused(client, replaces):
    before = Browser()
    post(client, SUBSCRIBE, subscribe_body(before))

    response = post(client, RESUBSCRIBE, renewal_body(before, Browser(), **replaces))

    assert refused_as_unknown(response)
    assert list(Subscriber.objects.values_list("endpoint", flat=True)) == [endpoint(1)]


@pytest.mark.parametrize("replaces", [None, "https://x", [], {}])
def test_a_renewal_that_says_nothing_of_the_old_subscription_creates_nothing(client, replaces):
    body = {**Browser().subscription(endpoint(2)), "replaces": replaces}

    response = post(client, RESUBSCRIBE, body)

    assert refused_as_unknown(response)
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"endpoint": "http://127.0.0.1:9/push"}, "must be reached over https"),
        ({"endpoint": "https://127.0.0.1/" + "a" * 2000}, "too long"),
        ({"auth": b64url(b"a" * 15)}, "keys are not valid"),
        ({"p256dh": NOT_ON_CURVE}, "keys are not valid"),
        ({"endpoint": "https://169.254.169.254/push"}, "push service cannot be used"),
    ],
)
def test_the_renewed_subscription_is_checked_as_a_new_one(client, changes, message):
    before = Browser()
    post(client, SUBSCRIBE, subscribe_body(before))

    response = post(client, RESUBSCRIBE, _with(renewal_body(before, Browser()), **changes))

    assert response.status_code == 400
    assert message in response.json()["error"]
    row = Subscriber.objects.get()
    assert (row.endpoint, row.push_auth) == (endpoint(1), b64url(before.auth))


@pytest.mark.parametrize("host", ["10.0.0.8", "[::1]", "localhost"])
def test_a_renewal_to_a_private_address_is_refused(client, settings, host):
    before = Browser()
    post(client, SUBSCRIBE, subscribe_body(before))
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = False
    body = _with(renewal_body(before, Browser()), endpoint=f"https://{host}/push/abc")

    response = post(client, RESUBSCRIBE, body)

    assert response.status_code == 400
    assert response.json()["error"] == "This browser's push service cannot be used."
    assert Subscriber.objects.get().endpoint == endpoint(1)


@pytest.mark.parametrize("body", [[1, 2], "{not json", b"\xff\xfe", {"replaces": {}}])
def test_an_unreadable_renewal_is_refused(client, body):
    response = post(client, RESUBSCRIBE, body)

    assert response.status_code == 400
    assert not Subscriber.objects.exists()


def test_a_huge_renewal_is_refused_unread(client):
    before = Browser()
    post(client, SUBSCRIBE, subscribe_body(before))
    body = renewal_body(before, Browser(), padding="x" * 20_000)

    response = post(client, RESUBSCRIBE, body)

    assert response.status_code == 400
    assert "too large" in response.json()["error"]
    assert Subscriber.objects.get().endpoint == endpoint(1)


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_SEC_FETCH_SITE": "cross-site"},
        {"HTTP_ORIGIN": "https://evil.example"},
        {"HTTP_ORIGIN": "null"},
    ],
)
def test_a_renewal_from_another_site_is_refused_even_with_the_secret(client, headers):
    before = Browser()
    post(client, SUBSCRIBE, subscribe_body(before))

    response = post(client, RESUBSCRIBE, renewal_body(before, Browser()), **headers)

    assert response.status_code == 403
    assert Subscriber.objects.get().endpoint == endpoint(1)


def test_renewals_count_against_the_same_limit(client, settings):
    settings.BEACON_SUBSCRIBE_LIMIT_PER_IP = 2
    before = Browser()
    post(client, SUBSCRIBE, subscribe_body(before), REMOTE_ADDR="203.0.113.9")
    guesses = [
        post(
            client,
            RESUBSCRIBE,
            renewal_body(before, Browser(), auth=b64url(bytes([n]) * 16)),
            REMOTE_ADDR="203.0.113.9",
        ).status_code
        for n in range(3)
    ]

    assert guesses == [400, 429, 429]
    assert client.get(RESUBSCRIBE).status_code == 405

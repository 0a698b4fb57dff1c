"""Browser push on the status page: the service worker, the VAPID public key, and the
endpoints its "Notify me in this browser" control posts the browser's subscription to.

The control lives in the status page, a snapshot shared by every visitor, so the posts carry
no CSRF token: statuspage.lib.origin.same_origin checks the browser's Sec-Fetch-Site and
Origin headers instead, as for visitors' problem reports; the service worker's renewal post
(`pushsubscriptionchange`) is a fetch from this origin too, so the same check holds. Bodies
are capped, rate limited per client address and answered with JSON: 400 with a message for
anything malformed.
"""

import json
import logging
from collections.abc import Callable
from functools import cache

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from incidents.notify import push, vapid
from statuspage.lib import ratelimit
from statuspage.lib.http_body import read_capped
from statuspage.lib.origin import same_origin

logger = logging.getLogger(__name__)

SERVICE_WORKER = "js/push-sw.js"
# A subscription is well under 1 KB; a page of components' ids a few more.
MAX_BODY_BYTES = 16 * 1024
RATE_WINDOW_SECONDS = 3600
NEVER_CACHE = "no-store"


@cache
def _service_worker() -> bytes:
    path = finders.find(SERVICE_WORKER)
    if not isinstance(path, str):
        raise Http404("No service worker.")
    with open(path, "rb") as handle:
        return handle.read()


@require_safe
def service_worker(request: HttpRequest) -> HttpResponse:
    """`/sw.js`: at the root, so its scope is the whole page without Service-Worker-Allowed."""
    response = HttpResponse(_service_worker(), content_type="text/javascript; charset=utf-8")
    # Browsers look for a new worker at most daily anyway; no-cache makes each look count.
    response["Cache-Control"] = "no-cache"
    return response


@require_safe
def public_key(request: HttpRequest) -> JsonResponse:
    """The application server key browsers subscribe with (the same for every visitor)."""
    response = JsonResponse({"public_key": vapid.public_key()})
    response["Cache-Control"] = "public, max-age=3600"
    return response


def _error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _refusal(request: HttpRequest) -> JsonResponse | None:
    """The answer to a post that is not let in (another site, too many, too large), if any."""
    if not same_origin(request):
        return _error(gettext("Only this status page can subscribe this browser."), 403)
    verdict = ratelimit.hit_sliding(
        f"push:ip:{ratelimit.client_ip(request)}",
        limit=settings.BEACON_SUBSCRIBE_LIMIT_PER_IP,
        window=RATE_WINDOW_SECONDS,
    )
    if not verdict.allowed:
        response = _error(gettext("Too many attempts from your address: try again later."), 429)
        response["Retry-After"] = str(verdict.retry_after)
        return response
    return None


def _json_body(request: HttpRequest) -> dict[str, object]:
    raw = read_capped(request, MAX_BODY_BYTES)
    if raw is None:
        raise ValidationError(gettext("The request is too large."))
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ValidationError(gettext("The subscription could not be read.")) from None
    if not isinstance(data, dict):
        raise ValidationError(gettext("The subscription could not be read."))
    return data


def _component_ids(data: dict[str, object]) -> list[str]:
    chosen = data.get("components", [])
    if not isinstance(chosen, list) or not all(isinstance(value, str) for value in chosen):
        raise ValidationError(gettext("Choose components from the list."))
    return [str(value) for value in chosen]


def _answered(response: JsonResponse) -> JsonResponse:
    response["Cache-Control"] = NEVER_CACHE
    return response


def _subscription_posted(
    request: HttpRequest,
    act: Callable[[dict[str, object], push.PushSubscription], JsonResponse],
) -> JsonResponse:
    """Let the post in, read the browser's subscription from it and act on it; 400 if bad."""
    refused = _refusal(request)
    if refused is not None:
        return _answered(refused)
    try:
        data = _json_body(request)
        return _answered(act(data, push.push_subscription_parse(data)))
    except push.UnknownSubscription as error:
        unknown = {"error": error.message, "code": "unknown subscription"}
        return _answered(JsonResponse(unknown, status=400))
    except ValidationError as error:
        return _answered(_error(" ".join(error.messages)))


@csrf_exempt  # same_origin() instead: the control is on a shared snapshot
@require_POST
def subscribe(request: HttpRequest) -> JsonResponse:
    def stored(data: dict[str, object], subscription: push.PushSubscription) -> JsonResponse:
        subscriber = push.push_subscribe(
            subscription=subscription, component_ids=_component_ids(data)
        )
        components = 0 if subscriber.all_components else subscriber.components.count()
        return JsonResponse({"subscribed": True, "components": components}, status=201)

    return _subscription_posted(request, stored)


def _replaced(data: dict[str, object]) -> tuple[str, str]:
    """The renewed-away subscription's endpoint and auth secret, as the worker posts them."""
    replaces = data.get("replaces")
    if not isinstance(replaces, dict):
        raise push.UnknownSubscription()
    endpoint, auth = replaces.get("endpoint"), replaces.get("auth")
    if not isinstance(endpoint, str) or not isinstance(auth, str):
        raise push.UnknownSubscription()
    if len(endpoint) > push.MAX_ENDPOINT_LENGTH:
        raise push.UnknownSubscription()
    return endpoint, auth


@csrf_exempt  # same_origin() holds: the service worker's fetches are this origin's
@require_POST
def resubscribe(request: HttpRequest) -> JsonResponse:
    """The service worker's `pushsubscriptionchange`: the browser renewed its subscription.

    The post carries the new subscription and `replaces`, the old one's endpoint and auth
    secret; the components chosen stay as they were."""

    def moved(data: dict[str, object], subscription: push.PushSubscription) -> JsonResponse:
        old_endpoint, old_auth = _replaced(data)
        push.push_resubscribe(
            old_endpoint=old_endpoint, old_auth=old_auth, subscription=subscription
        )
        return JsonResponse({"resubscribed": True})

    return _subscription_posted(request, moved)


@csrf_exempt  # same_origin() instead: the control is on a shared snapshot
@require_POST
def unsubscribe(request: HttpRequest) -> JsonResponse:
    refused = _refusal(request)
    if refused is not None:
        return _answered(refused)
    try:
        data = _json_body(request)
    except ValidationError as error:
        return _answered(_error(" ".join(error.messages)))
    endpoint, keys = data.get("endpoint"), data.get("keys")
    auth = keys.get("auth") if isinstance(keys, dict) else None
    if not isinstance(endpoint, str) or not isinstance(auth, str):
        return _answered(_error(gettext("The subscription could not be read.")))
    removed = push.push_unsubscribe(endpoint=endpoint[: push.MAX_ENDPOINT_LENGTH + 1], auth=auth)
    return _answered(JsonResponse({"unsubscribed": removed}))

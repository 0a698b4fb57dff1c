"""Subscriptions: the public form (email, chat channels, webhooks), the links in the emails,
one-click unsubscribe.

None of these pages is a snapshot (statuspage.public.snapshots.keys.PUBLIC_URLS does not name
them): each carries a CSRF token or a subscriber's own link, so each is rendered per request and
never stored by a browser or a proxy. The status page itself fetches the form with htmx.
"""

import base64
import hmac
import json
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeAlias

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import get_language, gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from incidents.forms import PreferencesForm, SubscribeForm
from incidents.notify import bounces, links, subscriptions, visitor_channels
from incidents.notify.models import Audience, Subscriber
from incidents.notify.visitor_channels import VisitorChannel
from statuspage.lib import ratelimit
from statuspage.lib.htmx import HtmxHttpRequest
from statuspage.lib.http_body import read_capped
from statuspage.models import PageSettings

logger = logging.getLogger(__name__)

RATE_WINDOW_SECONDS = 3600
# Signed codes are short; anything much longer is not one of ours.
MAX_TOKEN_LENGTH = 200

View: TypeAlias = Callable[..., HttpResponse]


def _private(view: View) -> View:
    """For pages reached through a subscriber's link: the link must not leak or be indexed."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on
        # the page's own POST (confirm, save, unsubscribe), which CSRF checks refuse.
        response["Referrer-Policy"] = "same-origin"
        response["X-Robots-Tag"] = "noindex"
        return response

    return wrapped


def _context(**context: Any) -> dict[str, Any]:
    return {"page": PageSettings.load(), **context}


# The public form


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def subscribe(request: HtmxHttpRequest) -> HttpResponse:
    """The form: the whole page, or (htmx) the form alone, swapped in on the status page.

    Every accepted address gets the same answer, whatever its state and whether the rate
    limits let an email go; the email says the rest.
    """
    if not PageSettings.load().allow_email_subscribers:
        raise Http404("This page does not take subscribers.")
    return subscribe_form(request, audience=Audience.PUBLIC, action=reverse("subscribe"))


def subscribe_form(request: HtmxHttpRequest, *, audience: Audience, action: str) -> HttpResponse:
    """The subscribe form and its answer, for the public page or (`audience=internal`, its
    viewer checked by the caller) /internal/, which also offers internal components."""
    internal = audience == Audience.INTERNAL
    if request.method != "POST":
        # The internal page takes email subscribers only: its channels' messages would carry
        # internal incidents to places staff do not control.
        chosen = VisitorChannel.EMAIL if internal else request.GET.get("channel", "")
        return _subscribe_response(
            request,
            SubscribeForm(initial={"channel": chosen}, include_internal=internal),
            action=action,
            internal=internal,
        )
    form = SubscribeForm(request.POST, include_internal=internal)
    if not form.is_valid():
        return _subscribe_response(request, form, status=400, action=action, internal=internal)
    channel = form.cleaned_data["channel"]
    if channel != VisitorChannel.EMAIL:
        if internal:
            form.add_error(None, gettext("The internal page takes email subscriptions only."))
            return _subscribe_response(request, form, status=400, action=action, internal=True)
        return _subscribe_channel(request, form, channel)
    if form.is_bot:
        return _subscribe_response(
            request, None, sent_to=form.cleaned_data["email"], action=action, internal=internal
        )
    try:
        address = subscriptions.normalise_email(form.cleaned_data["email"])
    except ValidationError as error:
        form.add_error(None, error)
        return _subscribe_response(request, form, status=400, action=action, internal=internal)
    if _subscribe_limited(request, address):
        # The same answer as a success: nobody learns that an address is being held back
        # (or is subscribed); the email is just not sent. Staff have the log line.
        return _subscribe_response(request, None, sent_to=address, action=action, internal=internal)
    try:
        subscriptions.subscription_request(
            email=address,
            component_ids=form.cleaned_data["components"],
            audience=audience,
            # The page's language they read (its prefix's, or the default): their emails'.
            language=get_language() or "",
        )
    except ValidationError as error:  # a component deleted while the form was open
        form.add_error(None, error)
        return _subscribe_response(request, form, status=400, action=action, internal=internal)
    return _subscribe_response(request, None, sent_to=address, action=action, internal=internal)


def _subscribe_channel(request: HtmxHttpRequest, form: SubscribeForm, channel: str) -> HttpResponse:
    """A chat channel or a webhook: vetted and tested at once, so the form says what failed."""
    endpoint = form.cleaned_data["endpoint"]
    email = form.cleaned_data["email"]
    if form.is_bot:
        answer = visitor_channels.ChannelAnswer(
            needs_confirmation=channel == VisitorChannel.WEBHOOK, email=email
        )
        return _subscribe_response(request, None, channel_answer=answer, channel=channel)
    if _subscribe_limited(request, endpoint):
        form.add_error(None, gettext("Too many attempts. Please try again in an hour."))
        return _subscribe_response(request, form, status=429)
    try:
        answer = visitor_channels.channel_subscription_request(
            channel=channel,
            endpoint=endpoint,
            email=email,
            component_ids=form.cleaned_data["components"],
        )
    except ValidationError as error:
        form.add_error(None, error)
        return _subscribe_response(request, form, status=400)
    return _subscribe_response(request, None, channel_answer=answer, channel=channel)


def _subscribe_limited(request: HttpRequest, address: str) -> bool:
    """Whether this IP or this address has asked too often in the last hour (sliding)."""
    ip = ratelimit.client_ip(request)
    by_ip = ratelimit.hit_sliding(
        f"subscribe:ip:{ip}",
        limit=settings.BEACON_SUBSCRIBE_LIMIT_PER_IP,
        window=RATE_WINDOW_SECONDS,
    )
    if not by_ip.allowed:
        logger.warning("subscribe: rate limit per IP reached for %s; nothing sent", ip)
        return True
    key = ratelimit.digest(address)
    by_address = ratelimit.hit_sliding(
        f"subscribe:address:{key}",
        limit=settings.BEACON_SUBSCRIBE_LIMIT_PER_ADDRESS,
        window=RATE_WINDOW_SECONDS,
    )
    if not by_address.allowed:
        # The address's digest (the rate-limit key), not the address: logs hold no addresses.
        logger.warning("subscribe: rate limit per address reached for %s; nothing sent", key)
        return True
    return False


def _subscribe_response(
    request: HtmxHttpRequest,
    form: SubscribeForm | None,
    *,
    status: int = 200,
    sent_to: str = "",
    channel_answer: visitor_channels.ChannelAnswer | None = None,
    channel: str = "",
    action: str = "",
    internal: bool = False,
) -> HttpResponse:
    context = _context(
        form=form,
        sent_to=sent_to,
        channel_answer=channel_answer,
        channel_label=VisitorChannel(channel).label if channel else "",
        channels=[] if internal else VisitorChannel.choices,
        subscribe_url=action or reverse("subscribe"),
    )
    if request.htmx:
        # htmx leaves 4xx answers unswapped: the form with its message is a 200 here.
        return render(request, "subscriptions/subscribe.html#subscribe-form", context)
    return render(request, "subscriptions/subscribe.html", context, status=status)


# The links in the emails


def _by_manage_token(token: str) -> Subscriber | None:
    if len(token) > MAX_TOKEN_LENGTH:
        return None
    return subscriptions.subscriber_by_manage_token(token)


def _manage_path(subscriber: Subscriber) -> str:
    return links.manage_path(subscriber)


def _subscriber_language(request: HttpRequest, token: str) -> str | None:
    """The language a subscriber's own pages speak at an unprefixed address (the links in
    their emails): theirs, while the page still offers it. A prefix chosen by hand wins."""
    if request.path != request.path_info or len(token) > MAX_TOKEN_LENGTH:
        return None
    confirm = links.confirm_token_value(token)
    code = confirm[0] if confirm is not None else links.manage_token_code(token)
    if code is None:
        return None
    language = Subscriber.objects.filter(public_id=code).values_list("language", flat=True).first()
    return language if language and language in PageSettings.load().languages else None


def _in_language_of(subscriber_view):
    """Render a view for a subscriber's token in their language (see _subscriber_language)."""

    @wraps(subscriber_view)
    def wrapped(request: HttpRequest, token: str) -> HttpResponse:
        language = _subscriber_language(request, token)
        if language is None:
            return subscriber_view(request, token)
        with translation.override(language):
            return subscriber_view(request, token)

    return wrapped


@_private
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
@_in_language_of
def subscription_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """Double opt-in. A GET only asks: mail scanners open links, people press buttons.

    A link works once, and only the newest one sent: a used, older, expired or tampered link
    gets the same 410, which never shows a manage link.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        subscriber = None
    elif request.method == "POST":
        subscriber = subscriptions.subscription_confirm_by_token(token=token)
    else:
        subscriber = subscriptions.subscriber_by_confirm_token(token)
    if subscriber is None:
        context = _context(state="invalid", confirm_hours=settings.BEACON_SUBSCRIBE_CONFIRM_HOURS)
        return render(request, "subscriptions/confirm.html", context, status=410)
    if request.method != "POST":
        return render(
            request, "subscriptions/confirm.html", _context(state="ask", subscriber=subscriber)
        )
    return render(
        request,
        "subscriptions/confirm.html",
        _context(state="subscribed", subscriber=subscriber, manage_path=_manage_path(subscriber)),
    )


@_private
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
@_in_language_of
def subscription_manage(request: HtmxHttpRequest, token: str) -> HttpResponse:
    subscriber = _by_manage_token(token)
    if subscriber is None:
        return render(request, "subscriptions/manage.html", _context(form=None), status=404)
    saved = False
    internal = subscriber.audience == Audience.INTERNAL
    page = PageSettings.load()
    names = dict(settings.LANGUAGES)
    languages = [(code, names[code]) for code in page.languages]
    if request.method == "POST":
        form = PreferencesForm(request.POST, languages=languages, include_internal=internal)
        if form.is_valid():
            try:
                subscriptions.subscription_set_components(
                    subscriber=subscriber,
                    component_ids=form.cleaned_data["components"],
                    language=form.cleaned_data["language"] or None,
                )
                saved = True
            except ValidationError as error:
                form.add_error(None, error)
    else:
        chosen = [] if subscriber.all_components else [c.pk for c in subscriber.components.all()]
        language = subscriber.language or page.default_language
        form = PreferencesForm(
            initial={"components": chosen, "language": language},
            languages=languages,
            include_internal=internal,
        )
    context = _context(
        form=form,
        saved=saved,
        subscriber=subscriber,
        unsubscribe_path=reverse("subscription-unsubscribe", kwargs={"token": token}),
    )
    if request.htmx:
        return render(request, "subscriptions/manage.html#preferences-form", context)
    status = 400 if form.errors else 200
    return render(request, "subscriptions/manage.html", context, status=status)


@csrf_exempt  # RFC 8058: mail clients POST here without cookies; the signed token decides
@_private
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
@_in_language_of
def subscription_unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """One-click unsubscribe. A GET asks first; a POST (a mail client's, or ours) leaves.

    An unknown or already used link says "unsubscribed" too: it tells nobody anything.
    """
    subscriber = _by_manage_token(token)
    if request.method == "POST":
        if subscriber is not None:
            subscriptions.subscription_cancel(subscriber=subscriber)
        subscriber = None
    return render(
        request,
        "subscriptions/unsubscribed.html",
        _context(subscriber=subscriber, token=token),
    )


# Bounce reports from the mail provider


MAX_BOUNCE_BYTES = 1_000_000


def _bounce_error(status: int, error: str, message: str) -> JsonResponse:
    return JsonResponse({"error": error, "message": message}, status=status)


def _bounce_token_problem(request: HttpRequest) -> JsonResponse | None:
    """None when the request carries BOUNCE_WEBHOOK_TOKEN: `?token=`, or basic auth's
    password (any user name), or a bearer token. 401 without one, 403 with a wrong one."""
    given = request.GET.get("token", "")
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if not given and scheme.lower() == "basic":
        try:
            given = base64.b64decode(credentials, validate=True).decode().partition(":")[2]
        except ValueError:  # binascii.Error and UnicodeDecodeError included
            given = ""
    elif not given and scheme.lower() == "bearer":
        given = credentials.strip()
    if not given:
        response = _bounce_error(401, "unauthorized", "Give the bounce webhook token.")
        response["WWW-Authenticate"] = 'Basic realm="bounces"'
        return response
    expected = settings.BEACON_BOUNCE_WEBHOOK_TOKEN
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return _bounce_error(403, "forbidden", "Wrong bounce webhook token.")
    return None


@csrf_exempt  # a provider's server posts here; the token decides
@never_cache
@require_http_methods(["POST"])
def bounce_webhook(request: HttpRequest, provider: str) -> JsonResponse:
    """A provider's bounce webhook: hard bounces suppress the address, the rest is ignored.

    The answer never says whether an address was subscribed.
    """
    reader = bounces.PROVIDERS.get(provider)
    if not settings.BEACON_BOUNCE_WEBHOOK_TOKEN or reader is None:
        return _bounce_error(404, "not_found", "No bounce webhook here.")
    problem = _bounce_token_problem(request)
    if problem is not None:
        return problem
    if request.content_type not in reader.content_types:
        expected = " or ".join(reader.content_types)
        return _bounce_error(415, "unsupported_media_type", f"Send {expected}.")
    raw = read_capped(request, MAX_BOUNCE_BYTES)
    if raw is None:
        return _bounce_error(413, "too_large", f"At most {MAX_BOUNCE_BYTES} bytes.")
    try:
        payload = json.loads(raw)
        found = reader().bounces(payload)
    except (ValueError, RecursionError) as error:  # BadReport and JSON errors included
        message = str(error) if isinstance(error, bounces.BadReport) else "The body is not JSON."
        return _bounce_error(400, "bad_request", message)
    except PermissionError as error:
        return _bounce_error(403, "forbidden", str(error))
    except bounces.SubscriptionConfirmation as confirmation:
        logger.warning(
            "bounces: Amazon SNS asks to confirm the subscription; open %s once",
            confirmation.url,
        )
        return JsonResponse({"status": "subscription confirmation logged"})
    for bounce in found:
        subscriptions.subscriber_suppress_bounced(email=bounce.email, reason=bounce.reason)
    return JsonResponse({"status": "ok"})

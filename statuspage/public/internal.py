"""/internal/: the status page with internal components, groups, incidents and maintenances.

The same pages as the public ones, rendered from the same selectors with internal items
included and marked, and served from snapshots of their own (keys under /internal/, never
written to the files tree nginx serves, the static export or the bucket: those take only
keys.public_keys()). Rebuilt on the same changes, as they share the generation.

Who may view, checked before the snapshot is read and, for the first two, without
PostgreSQL: a viewer's signed cookie from an emailed sign-in link
(statuspage/lib/internal_access.py), a client address in PageSettings.internal_networks,
or a signed-in staff member (the session is in the database). Anyone else is sent to the
sign-in page, whatever the URL: a made-up incident code and a real one look the same.
"""

import logging
import re
from collections.abc import Callable
from typing import TypeVar

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.paginator import EmptyPage
from django.core.validators import validate_email
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods, require_safe

from components.reports.models import Symptom
from incidents.notify.models import Audience
from incidents.views import subscribe_form
from statuspage.lib import internal_access, ratelimit
from statuspage.lib.htmx import HtmxHttpRequest
from statuspage.lib.ids import could_be_public_id
from statuspage.lib.outage import database_unreachable
from statuspage.models import PageSettings
from statuspage.public import selectors
from statuspage.public.snapshots import serve
from statuspage.public.views import _render, not_found

logger = logging.getLogger("beacon.internal")

INTERNAL_CACHE_CONTROL = "private, no-store"
# Sign-in links asked for, per address and per client address, per hour.
SIGN_IN_LIMIT_PER_ADDRESS = 5
SIGN_IN_LIMIT_PER_IP = 20
SIGN_IN_WINDOW = 3600
MAX_EMAIL_LENGTH = 254

# Links in the shared templates point at the public pages; on /internal/ they point here.
_PUBLIC_LINK = re.compile(r'(href|hx-get)="/(incidents/[^"]*|history/[^"]*|subscribe/|)"')


# Who may view


def internal_viewer(request: HttpRequest) -> str | None:
    """How this request may view /internal/ ("link", "network" or "staff"), or None."""
    signed_in = internal_access.viewer_from_cookie(
        request.COOKIES.get(internal_access.VIEWER_COOKIE)
    )
    page = _page_settings()
    # A domain staff removed lets nobody in any more, whatever cookies are out there; with
    # the settings unreadable (PostgreSQL and Redis both away) the signed cookie decides.
    if signed_in and (
        page is None or internal_access.email_allowed(signed_in, page.internal_email_domains)
    ):
        return "link"
    if (
        page is not None
        and page.internal_networks
        and internal_access.address_allowed(ratelimit.client_ip(request), page.internal_networks)
    ):
        return "network"
    if _is_staff(request):
        return "staff"
    return None


def _page_settings() -> PageSettings | None:
    """The cached settings; None when neither the cache nor the database answers."""
    try:
        return PageSettings.load()
    except Exception as error:
        if not database_unreachable(error):
            raise
        return None


def _is_staff(request: HttpRequest) -> bool:
    """A staff member signed in with both factors; False while the session store (the
    database) is away."""
    try:
        user = getattr(request, "user", None)
        if user is None or not (user.is_authenticated and user.is_staff):
            return False
        is_verified = getattr(user, "is_verified", None)
        return bool(is_verified()) if callable(is_verified) else False
    except Exception as error:
        if not database_unreachable(error):
            raise
        return False


# The pages


def _gated(request: HttpRequest, render_page: Callable[[], HttpResponse]) -> HttpResponseBase:
    if getattr(request, "beacon_render", False):
        # The snapshot builder's own request (snapshots.build.render_key), or a live render
        # after the viewer was let in.
        return _internal_links(render_page())
    if internal_viewer(request) is None:
        return _private(HttpResponseRedirect(reverse("internal-sign-in")))

    def render_live() -> HttpResponse:
        request.beacon_render = True  # type: ignore[attr-defined]
        return _internal_links(render_page())

    response = serve.serve(
        request,
        _snapshot_key(request),
        render_on_miss=render_live,
        not_found=lambda: not_found(request),
    )
    return _private(response)


def _snapshot_key(request: HttpRequest) -> str:
    """The path, and for a later page of history its number: nothing else in the query
    selects another output, so made-up queries cannot fill the store."""
    page_number = request.GET.get("page", "")
    if request.path == reverse("internal-history") and _page_number(page_number) > 1:
        return f"{request.path}?page={page_number}"
    return request.path


def _page_number(value: str) -> int:
    return int(value) if value.isdigit() and len(value) <= 6 else 1


def _internal_links(response: HttpResponse) -> HttpResponse:
    if response.status_code == 200 and response["Content-Type"].startswith("text/html"):
        html = response.content.decode()
        response.content = _PUBLIC_LINK.sub(r'\1="/internal/\2"', html).encode()
    return _private(response)


Response = TypeVar("Response", bound=HttpResponseBase)


def _private(response: Response) -> Response:
    response["Cache-Control"] = INTERNAL_CACHE_CONTROL
    if response.has_header("CDN-Cache-Control"):
        del response["CDN-Cache-Control"]
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


@require_safe
def internal_page(request: HttpRequest) -> HttpResponseBase:
    return _gated(
        request,
        lambda: _render(
            request,
            "statuspage/status_page.html",
            {
                # One language: /internal/ has no prefixed copies to switch to.
                "language_links": None,
                "status_page": selectors.build_status_page(include_internal=True),
                "report_symptoms": Symptom.choices,
                "internal_view": True,
            },
        ),
    )


@require_safe
def internal_incident(request: HttpRequest, code: str) -> HttpResponseBase:
    def render_incident() -> HttpResponse:
        incident = (
            selectors.incident_detail(code, include_internal=True)
            if could_be_public_id(code)
            else None
        )
        if incident is None:
            raise Http404("No incident with this code.")
        return _render(
            request,
            "statuspage/incident_detail.html",
            {
                "incident": incident,
                "page": PageSettings.load(),
                "internal_view": True,
                "language_links": None,
            },
        )

    return _gated(request, render_incident)


@require_safe
def internal_history(request: HttpRequest) -> HttpResponseBase:
    def render_history() -> HttpResponse:
        try:
            paginator_page, months = selectors.incident_history(
                page_number=_page_number(request.GET.get("page", "")), include_internal=True
            )
        except EmptyPage:
            raise Http404("There is no such page of history.") from None
        return _render(
            request,
            "statuspage/history.html",
            {
                "language_links": None,
                "page": PageSettings.load(),
                "paginator_page": paginator_page,
                "months": months,
                "internal_view": True,
            },
        )

    return _gated(request, render_history)


# Subscribing to internal incidents too


@require_http_methods(["GET", "HEAD", "POST"])
def internal_subscribe(request: HtmxHttpRequest) -> HttpResponse:
    """The subscribe form for viewers of /internal/: their subscribers are internal."""
    if internal_viewer(request) is None:
        return _private(HttpResponseRedirect(reverse("internal-sign-in")))
    response = subscribe_form(
        request, audience=Audience.INTERNAL, action=reverse("internal-subscribe")
    )
    return _private(_internal_links(response))


# Signing in with an emailed link


@require_http_methods(["GET", "HEAD", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    """Ask for a link. Every address gets the same answer after the same work: whether it
    may view is decided by the task that sends the link, so neither the words nor the time
    tell."""
    context: dict[str, object] = {"page": _page_settings()}
    if request.method == "POST":
        email = request.POST.get("email", "").strip()
        if not _is_email(email):
            context["error"] = gettext("Enter an email address.")
            return _private(
                render(request, "statuspage/internal_sign_in.html", context, status=400)
            )
        address = email.lower()
        ip_verdict = ratelimit.hit(
            f"internal-sign-in:ip:{ratelimit.digest(ratelimit.client_ip(request))}",
            limit=SIGN_IN_LIMIT_PER_IP,
            window=SIGN_IN_WINDOW,
        )
        address_verdict = ratelimit.hit(
            f"internal-sign-in:email:{ratelimit.digest(address)}",
            limit=SIGN_IN_LIMIT_PER_ADDRESS,
            window=SIGN_IN_WINDOW,
        )
        if not (ip_verdict.allowed and address_verdict.allowed):
            context["error"] = gettext("Too many sign-in links asked for. Try again later.")
            response = render(request, "statuspage/internal_sign_in.html", context, status=429)
            response["Retry-After"] = str(max(ip_verdict.retry_after, address_verdict.retry_after))
            return _private(response)
        # By name, as incidents/enqueue.py does: the tasks module sits above this one.
        current_app.signature(
            "statuspage.tasks.send_internal_sign_in_link",
            args=(address, request.build_absolute_uri("/")),
        ).delay()
        context["sent"] = True
    return _private(render(request, "statuspage/internal_sign_in.html", context))


def _is_email(value: str) -> bool:
    if not value or len(value) > MAX_EMAIL_LENGTH:
        return False
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


def sign_in_link_send(*, email: str, base_url: str) -> bool:
    """Email a sign-in link if the address is in an allowed domain; True when one was sent."""
    page = PageSettings.load()
    if not internal_access.email_allowed(email, page.internal_email_domains):
        logger.info("internal sign-in link not sent: the address is in no allowed domain")
        return False
    token = internal_access.sign_in_token(email)
    link = base_url.rstrip("/") + reverse("internal-sign-in-link", args=[token])
    minutes = internal_access.LINK_MAX_AGE // 60
    send_mail(
        subject=gettext("[%(name)s] Your link to the internal status page") % {"name": page.name},
        message=gettext(
            "Open this link to view %(name)s's internal status page:\n\n%(link)s\n\n"
            "It works once, within %(minutes)d minutes. If you did not ask for it, ignore "
            "this email.\n"
        )
        % {"name": page.name, "link": link, "minutes": minutes},
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[email],
    )
    return True


@require_http_methods(["GET", "HEAD", "POST"])
def sign_in_link(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button (mail scanners that open links must not use them up); POST uses
    the link once and sets the viewer's cookie."""
    context: dict[str, object] = {"page": _page_settings(), "token": token}
    if request.method != "POST":
        return _private(render(request, "statuspage/internal_sign_in_link.html", context))
    check = internal_access.use_sign_in_token(token)
    if check.email is None:
        context["refusal"] = check.refusal
        return _private(
            render(request, "statuspage/internal_sign_in_link.html", context, status=400)
        )
    response = HttpResponseRedirect(reverse("internal-page"))
    response.set_cookie(
        internal_access.VIEWER_COOKIE,
        internal_access.viewer_cookie_value(check.email),
        max_age=internal_access.VIEWER_MAX_AGE,
        path="/internal/",
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
    return _private(response)


urlpatterns = [
    path("internal/", internal_page, name="internal-page"),
    path("internal/incidents/<str:code>/", internal_incident, name="internal-incident"),
    path("internal/history/", internal_history, name="internal-history"),
    path("internal/subscribe/", internal_subscribe, name="internal-subscribe"),
    path("internal/sign-in/", sign_in, name="internal-sign-in"),
    path("internal/sign-in/<str:token>/", sign_in_link, name="internal-sign-in-link"),
]

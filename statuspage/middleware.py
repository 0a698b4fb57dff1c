from contextlib import nullcontext

from django.conf import settings
from django.core.handlers.wsgi import get_script_name
from django.http import HttpResponsePermanentRedirect, JsonResponse
from django.urls import get_script_prefix, set_script_prefix
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django_htmx.middleware import HtmxDetails

from statuspage.lib import languages, security_headers
from statuspage.lib.replica import reading_from_replica
from statuspage.public import api_v2, reports, views
from statuspage.public.snapshots import build, keys, serve, store

# Outputs whose snapshot misses this process renders from the database replica, when it is
# current (statuspage/db_router.py); the worker's renders after a write read the primary.
REPLICA_URL_NAMES = frozenset(
    {"history", *(f"api-v2-{name}" for _path, name, _build in api_v2.ENDPOINTS)}
)


class SnapshotMiddleware:
    """Serve every public GET from its snapshot; the view runs only to (re)build one.

    First in the stack, it also sees every response: no error is ever cached (no-store).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self._answer(request)
        if response.status_code >= 500:
            response["Cache-Control"] = build.ERROR_CACHE_CONTROL
            if response.has_header("CDN-Cache-Control"):
                del response["CDN-Cache-Control"]
        return response

    def _answer(self, request):
        if (
            request.method not in ("GET", "HEAD")
            or getattr(request, "beacon_render", False)
            # Plain HTTP behind a TLS proxy: Django's SecurityMiddleware redirects it.
            or security_headers.must_redirect_to_https(request.META)
        ):
            return self.get_response(request)
        key = keys.key_for(request.path_info, request.META.get("QUERY_STRING", ""))
        if key is None:
            return self.get_response(request)
        request.get_host()  # a host this site does not answer to is a 400, as everywhere
        location = serve.language_redirect(key, request.META)
        if location is not None:
            return serve.redirect_response(location, request.META)
        replica = keys.url_match(key.partition("?")[0])[0] in REPLICA_URL_NAMES
        with reading_from_replica() if replica else nullcontext():
            return serve.serve(
                request,
                key,
                render_on_miss=lambda: self._render_live(request),
                not_found=lambda: views.not_found(request),
            )

    def _render_live(self, request):
        """No snapshot and none could be built (a made-up URL, or the database is away):
        the view's own answer, or the error handlers' (503 while the database is away)."""
        request.beacon_render = True
        return self.get_response(request)


STAFF_PREFIX = "/admin/"


def page_language(get_response):
    """The language a public output or form is rendered in: its prefix's (`/de/history/`),
    else the page's default. Staff pages speak their browser's language (Accept-Language
    among the shipped ones); the API keeps LANGUAGE_CODE.

    Under a prefix the view sees the path without it, and the script prefix carries it, so
    that every link the page reverses stays in its language. No cookie and no session: the
    address alone says the language, so each language's rendering is a snapshot of its own.
    """

    def middleware(request):
        path = request.path_info
        language, bare = languages.split_prefix(path)
        if language is None:
            name = keys.url_match(path)[0]
            if name in keys.LOCALIZED_URL_NAMES or name in keys.PREFIXED_FORM_URL_NAMES:
                default = store.page_languages()[0]
                with translation.override(default):
                    request.LANGUAGE_CODE = default
                    return get_response(request)
            if path[1:] in languages.shipped() and path[1:] in store.page_languages()[1]:
                return HttpResponsePermanentRedirect(f"{request.path}/")
            if path.startswith(STAFF_PREFIX):
                # Staff pages are private and never cached: each staff member's browser may
                # choose among the shipped languages (Beacon's console and Django's admin).
                staff_language = languages.negotiate(
                    request.headers.get("Accept-Language", ""),
                    enabled=languages.shipped(),
                    default=settings.LANGUAGE_CODE,
                )
                with translation.override(staff_language):
                    request.LANGUAGE_CODE = staff_language
                    response = get_response(request)
                patch_vary_headers(response, ("Accept-Language",))
                return response
            return get_response(request)  # the API: LANGUAGE_CODE
        default, enabled = store.page_languages()
        if language not in enabled:
            with translation.override(default):
                return views.not_found(request)
        with translation.override(language):
            if keys.url_match(path)[0] is None:
                return views.not_found(request)
            request.path_info, request.LANGUAGE_CODE = bare, language
            script_prefix = get_script_prefix()
            set_script_prefix(f"{get_script_name(request.META)}/{language}/")
            try:
                return get_response(request)
            finally:
                set_script_prefix(script_prefix)

    return middleware


API_V1_PREFIX = "/api/v1/"


def api_v1_paths(get_response):
    """`/api/v1/pages/x/components.json` is `/api/v1/pages/x/components`, as on Statuspage;
    an id with a NUL in it is a 400 here, before PostgreSQL would refuse it with a 500."""

    def middleware(request):
        path = request.path_info
        if path.startswith(API_V1_PREFIX):
            if "\x00" in path:
                message = "The path must not contain NUL (%00) characters."
                return JsonResponse({"error": message, "message": message}, status=400)
            if path.endswith(".json") and path != "/api/v1/openapi.json":
                request.path_info = path.removesuffix(".json")
        return get_response(request)

    return middleware


def visitor_reports(get_response):
    """`POST /reports/` straight to its view, past the rest of the stack.

    In an outage visitors report by the thousand a second, and the view needs none of what
    the other middleware brings: no session, user, second factor, message, lock-out or audit
    (it reads no cookie and checks the browser's own headers instead of a CSRF token). The
    security headers are set outside (SecurityHeadersMiddleware), as for snapshots.
    """

    def middleware(request):
        if (
            request.method == "POST"
            and request.path_info == "/reports/"
            and not security_headers.must_redirect_to_https(request.META)
        ):
            request.get_host()  # a host this site does not answer to is a 400, as everywhere
            request.htmx = HtmxDetails(request)
            return reports.report(request)
        return get_response(request)

    return middleware

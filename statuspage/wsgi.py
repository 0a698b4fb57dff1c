import gc
import os
from http import HTTPStatus

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "statuspage.settings")
django_application = get_wsgi_application()

from django.conf import settings  # noqa: E402
from django.http.request import split_domain_port, validate_host  # noqa: E402

from statuspage.api_v1 import fast  # noqa: E402
from statuspage.lib import security_headers  # noqa: E402
from statuspage.public.snapshots import outage, serve  # noqa: E402

API_V1_PAGES = "/api/v1/pages"
REASONS = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}

serve.warm_memory()
# Everything loaded so far lives as long as the worker: keep it out of the collector's
# full passes, whose pauses over Django's many objects showed up as p99 spikes under load.
gc.collect()
gc.freeze()


def application(environ, start_response):
    """Answer a public read from this process's current snapshot, and a management API read
    from its kept answer (statuspage/api_v1/fast.py), before Django sees it.

    Everything else — a snapshot to build or refresh, the admin, static files, a host this
    site does not answer to, plain HTTP to be redirected to HTTPS — goes to Django, where
    SnapshotMiddleware does the same work with a full request.
    """
    # Whichever URL is asked, the database gets checked now and then: pages served from
    # memory say "cannot refresh" as soon as any process has noticed it is away.
    outage.probe_database_soon()
    if (
        environ.get("REQUEST_METHOD") in ("GET", "HEAD")
        and _allowed_host(environ)
        and not security_headers.must_redirect_to_https(environ)
    ):
        path, query_string = environ.get("PATH_INFO", "/"), environ.get("QUERY_STRING", "")
        if path.startswith(API_V1_PAGES):
            return fast.application(environ, start_response, django_application)
        location = serve.fast_language_redirect(path, query_string, environ)
        if location is not None:
            start_response(REASONS[302], serve.redirect_headers(location, environ))
            return [b""]
        snapshot = serve.fresh_in_memory(path, query_string)
        if snapshot is not None:
            status, headers, body = serve.representation(snapshot, environ)
            start_response(REASONS[status], headers)
            return [body]
    return django_application(environ, start_response)


def _allowed_host(environ) -> bool:
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)

"""Heartbeats: the one public write. A job's `curl` tells Beacon it ran (or failed)."""

import uuid

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from components.checks.services import heartbeat_ping


def _text(body: str, *, status: int = 200) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")


@csrf_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def ping(request: HttpRequest, token: str, failed: bool = False) -> HttpResponse:
    try:
        ping_token = uuid.UUID(token)
    except ValueError:
        return _text("Not found", status=404)
    if not heartbeat_ping(token=ping_token, failed=failed):
        return _text("Not found", status=404)
    return _text("OK")

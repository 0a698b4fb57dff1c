"""The public endpoint monitoring tools post their alerts to, at an integration's secret URL."""

import logging

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_http_methods

from components.alerts.kinds import PayloadError
from components.alerts.models import AlertIntegration
from components.alerts.services import alerts_receive
from statuspage.lib import ratelimit
from statuspage.lib.http_body import read_capped
from statuspage.lib.request_log import with_request_id

logger = logging.getLogger("beacon.alerts")

MAX_BODY_BYTES = 1024 * 1024
# Per integration: Alertmanager sends a group at a time, so this is many alerts a minute.
RATE_LIMIT_PER_MINUTE = 600


def _error(status: int, error: str, message: str, **headers: str) -> JsonResponse:
    return JsonResponse({"error": error, "message": message}, status=status, headers=headers)


@csrf_exempt
@with_request_id  # outermost but for CSRF: even a 405 is logged with the id, masked
@never_cache
@require_http_methods(["POST", "PUT"])  # Grafana's contact point may be set to PUT
@sensitive_variables("token")
def receive(request: HttpRequest, kind: str, token: str) -> JsonResponse:
    integration = AlertIntegration.objects.filter(kind=kind, token=token, enabled=True).first()
    if integration is None:
        return _error(404, "not_found", "No enabled integration has this URL.")
    verdict = ratelimit.hit(f"alerts:{integration.pk}", limit=RATE_LIMIT_PER_MINUTE, window=60)
    if not verdict.allowed:
        return _error(
            429,
            "rate_limited",
            f"More than {RATE_LIMIT_PER_MINUTE} deliveries this minute.",
            **{"Retry-After": str(verdict.retry_after)},
        )
    body = read_capped(request, MAX_BODY_BYTES)
    if body is None:
        return _error(413, "too_large", f"The body is over {MAX_BODY_BYTES} bytes.")
    try:
        result = alerts_receive(integration=integration, body=body)
    except PayloadError as error:
        return _error(400, "invalid_payload", str(error))
    logger.info(
        "alert delivery integration=%s alerts=%d changed=%d stale=%d unmatched=%d",
        integration.pk,
        result.alerts,
        result.changed,
        result.stale,
        len(result.unmatched),
    )
    return JsonResponse({"ok": True, **result.as_dict()})

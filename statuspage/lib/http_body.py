"""Reading a request body with a cap: a model-free helper for the endpoints other servers
post to (alert integrations, bounce webhooks)."""

from django.http import HttpRequest


def read_capped(request: HttpRequest, limit: int) -> bytes | None:
    """The body, or None when it is over `limit` bytes (declared or actual); never more
    than `limit` + 1 bytes are read, whatever Content-Length says."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body

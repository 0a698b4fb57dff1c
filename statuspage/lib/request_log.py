"""Log lines that never hold a secret URL, and that name the request they are about.

An alert integration's token is its URL (`/integrations/<kind>/<token>/`): whoever reads a
log line holding it can change statuses. Every log record this process makes is masked when
it is made (a LogRecord factory, so no logger or handler can miss it: django.request,
django.server, gunicorn's access log, Celery, tracebacks), and carries `request_id`, the id
of the request being served ("-" outside one).

A leaf module: it imports nothing of ours.
"""

import contextvars
import functools
import logging
import re
import traceback
import uuid
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.log import log_response

from statuspage.lib.outage import database_read_only, database_unreachable

# The segment after /integrations/<kind>/, up to the next slash, query, quote or space.
_SECRET_PATH = re.compile(r"(/integrations/[^/\s?#\"']+/)[^/\s?#\"']+")
MASK = "****"

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept when it is short and plain (what nginx's $request_id, uuids and
# most tracing ids look like); anything else is replaced, so a log line cannot be forged.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

_P = ParamSpec("_P")

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def mask(text: str) -> str:
    """`/integrations/alertmanager/s3cr3t/` → `/integrations/alertmanager/****/`."""
    if "/integrations/" not in text:
        return text
    return _SECRET_PATH.sub(rf"\g<1>{MASK}", text)


def request_id_for(header: str | None) -> str:
    header = (header or "").strip()
    if _SANE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def mask_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask the record's message and traceback in place; returns it."""
    try:
        message = record.getMessage()
    except Exception:  # a format string its arguments do not fit: keep both, masked
        record.msg, record.args = mask(f"{record.msg} {record.args!r}"), None
    else:
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
    if record.exc_info and record.exc_info[0] is not None:
        # Formatted now, masked: handlers use exc_text rather than format it again.
        record.exc_text = mask("".join(traceback.format_exception(*record.exc_info)))
    return record


def _masked_record(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.request_id = _request_id.get()
        return mask_record(record)

    make.masks_secrets = True  # type: ignore[attr-defined]
    return make


def install() -> None:
    """Mask every log record this process makes from now on (idempotent)."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "masks_secrets", False):
        logging.setLogRecordFactory(_masked_record(factory))


def _mask_request(request: HttpRequest) -> None:
    """Once the view has read the token: the request, and the WSGI environ that gunicorn's
    access log and Django's error reports read after us, show the path masked."""
    request.path = mask(request.path)
    request.path_info = mask(request.path_info)
    for key in ("PATH_INFO", "RAW_URI", "REQUEST_URI"):
        if isinstance(request.META.get(key), str):
            request.META[key] = mask(request.META[key])


# Senders (monitoring tools, cron jobs' curl) retry a 503 after Retry-After.
RETRY_AFTER_SECONDS = 30


def _failure_response(error: Exception, request_id: str) -> JsonResponse:
    """A database that is away or read-only (a standby region's) is a 503 to retry, saying
    so; anything else a 500 naming the request's id."""
    if database_read_only(error):
        code, status = "read_only", 503
        message = (
            "This copy of Beacon is read-only: its database is a standby. Send this to the "
            "primary region, or again once this region's database has been promoted."
        )
    elif database_unreachable(error):
        code, status = "database_unavailable", 503
        message = "Beacon cannot reach its database right now; try again in a minute."
    else:
        code, status = "internal_error", 500
        message = (
            "Beacon could not handle this request; staff can find it in the logs by its id "
            f"{request_id}."
        )
    response = JsonResponse({"error": code, "message": message}, status=status)
    if status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def with_request_id(
    view: Callable[Concatenate[HttpRequest, _P], HttpResponse],
) -> Callable[Concatenate[HttpRequest, _P], HttpResponse]:
    """Give each request to `view` an id: the caller's X-Request-ID when sane, else a new
    one; echoed in the response and in every log line about the request, including the
    4xx/5xx lines django.request writes (logged here, while the id is still known). An
    exception answers a JSON 500 naming the id, never a traceback page. For views whose
    URL holds a secret: the request's path is masked once the view has returned."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, /, *args: _P.args, **kwargs: _P.kwargs) -> HttpResponse:
        request_id = request_id_for(request.headers.get(REQUEST_ID_HEADER))
        # The request carries its id to whoever handles it next; HttpRequest declares none.
        request.request_id = request_id  # type: ignore[attr-defined]
        token = _request_id.set(request_id)
        try:
            failure: Exception | None = None
            try:
                response = view(request, *args, **kwargs)
            except Exception as error:
                failure = error
                response = _failure_response(error, request_id)
            _mask_request(request)
            response[REQUEST_ID_HEADER] = request_id
            if response.status_code >= 400:
                # Django would log it after this returns, when the id is no longer known:
                # "Internal Server Error: <path>" with the traceback, "Bad Request: <path>".
                log_response(
                    "%s: %s",
                    response.reason_phrase,
                    request.path,
                    response=response,
                    request=request,
                    exception=failure,
                )
            return response
        finally:
            _request_id.reset(token)

    return wrapper


class Formatter(logging.Formatter):
    """Beacon's log lines: the message, then the request id when it is about a request."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        request_id = getattr(record, "request_id", "-")
        return line if request_id == "-" else f"{line} request_id={request_id}"


class NotFoundIsNotNews(logging.Filter):
    """Drops Django's `Not Found: <path>` warnings. Anyone can ask for made-up addresses by
    the thousand (a scanner, a stale link in a feed reader); the access log has each one,
    and a warning apiece would bury the lines that matter."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "status_code", None) != 404

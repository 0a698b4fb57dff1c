"""What every management API endpoint shares: keys, the rate limit, bodies and errors."""

import functools
import json
import re
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import DEFAULT_DB_ALIAS, IntegrityError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser
from ninja.schema import DjangoGetter
from ninja.security import APIKeyHeader, APIKeyQuery
from pydantic import AfterValidator, Field, model_validator

from components.models import Component
from statuspage.api_v1 import schemas
from statuspage.api_v1.keys import (
    ApiKeyExpired,
    KeyRecord,
    api_key_allows,
    api_key_authenticate,
)
from statuspage.lib import ratelimit
from statuspage.lib.replica import reading_from_replica
from statuspage.lib.text import control_character_error
from statuspage.models import PageSettings

RATE_WINDOW_SECONDS = 60
# Set by the WSGI fast path on a request it counted and found over the limit: the Retry-After.
RATE_LIMITED_ENVIRON = "beacon.api.rate_limited_retry_after"
# Statuspage's page size, default and maximum.
MAX_PER_PAGE = 100
# Far past any real list (100 per page), and small enough for a database OFFSET.
LAST_PAGE = 1_000_000


class RateLimited(Exception):
    def __init__(self, retry_after: int):
        self.retry_after = retry_after


class ReadOnlyKey(Exception):
    def __init__(self, method: str):
        self.method = method


class _KeyChecks:
    """A key found in the request, checked, and counted against its rate limit."""

    def authenticate(self, request: HttpRequest, key: str | None) -> KeyRecord | None:
        """The key's record (ninja keeps it as request.auth); request.user is its owner,
        read from the database only if something asks (a write, for its author)."""
        raw = raw_key(key)
        record = api_key_authenticate(raw) if raw else None
        if record is None:
            return None
        # The WSGI fast path (fast.py) counted this request already, and found it over.
        counted = request.META.get(RATE_LIMITED_ENVIRON)
        if counted is not None:
            raise RateLimited(int(counted))
        limit = ratelimit.hit_rolling(
            f"api:key:{record.key_pk}",
            limit=settings.BEACON_API_RATE_LIMIT_PER_MINUTE,
            window=RATE_WINDOW_SECONDS,
        )
        if not limit.allowed:
            raise RateLimited(limit.retry_after)
        # Before the body is read or the view runs: a read-only key's write changes nothing.
        if not api_key_allows(key=record, method=request.method or ""):
            raise ReadOnlyKey(request.method or "")
        request.user = key_owner_of(record)  # type: ignore[assignment]
        return record


def key_owner_of(record: KeyRecord) -> User:
    """The key's owner as the record knows them: a User with its id and username loaded and
    every other field deferred, read from the database when first touched. A write names its
    author and its audit actor by id, so it costs no query."""
    return User.from_db(
        DEFAULT_DB_ALIAS, ["id", "username"], [record.owner_pk, record.owner_username]
    )


def key_owner(request: HttpRequest) -> User | None:
    """The staff member whose key made the request (authenticate() set it), for the record."""
    return request.user if isinstance(request.user, User) else None


def raw_key(value: str | None) -> str:
    """`OAuth <key>` as Statuspage clients send it, `Bearer <key>`, or the bare key."""
    value = (value or "").strip()
    scheme, _, rest = value.partition(" ")
    if rest and scheme.lower() in ("oauth", "bearer", "token"):
        return rest.strip()
    return value


class AuthorizationHeader(_KeyChecks, APIKeyHeader):
    param_name = "Authorization"


class ApiKeyParameter(_KeyChecks, APIKeyQuery):
    param_name = "api_key"


class StatuspageBodies(Parser):
    """JSON, or form-encoded with Rails brackets (`incident[components][]=id`), as Statuspage."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        content_type = request.content_type or ""
        if content_type == "application/x-www-form-urlencoded":
            form = request.POST if request.method == "POST" else _form(request)
            return _without_nul(rails_params(form))
        if not request.body:
            return {}
        try:
            data = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as error:
            raise HttpError(400, f"The body is not valid JSON: {error}") from error
        if not isinstance(data, dict):
            raise HttpError(400, "The body must be a JSON object.")
        return _without_nul(data)

    def parse_querydict(self, data, list_fields, request):
        return _without_nul(super().parse_querydict(data, list_fields, request))


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_nul(data: Any) -> Any:
    """PostgreSQL text cannot hold NUL, nor a lone surrogate (`"\\ud800"` in JSON, which is
    no character at all): refuse them here, not with a 500 at the database."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise HttpError(400, "Text must not contain NUL (\\u0000) characters.")
            if LONE_SURROGATE.search(value):
                raise HttpError(400, "Text must not contain lone surrogates (\\ud800-\\udfff).")
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return data


def _form(request: HttpRequest):
    from django.http import QueryDict

    return QueryDict(request.body, encoding=request.encoding or "utf-8")


_BRACKETS = re.compile(r"\[([^\]]*)\]")


def rails_params(data) -> dict[str, Any]:
    """`incident[name]=x&incident[component_ids][]=a` → {"incident": {"name": "x", …}}."""
    result: dict[str, Any] = {}
    for full_key in data:
        head = full_key.split("[", 1)[0]
        path = [head, *_BRACKETS.findall(full_key[len(head) :])]
        values = data.getlist(full_key)
        node = result
        for index, part in enumerate(path):
            last = index == len(path) - 1
            if last:
                node[part] = values if part == "" else values[-1]
                break
            if path[index + 1] == "":  # key[] : a list
                node[part] = values
                break
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
    return result


api = NinjaAPI(
    title="Beacon management API",
    version="1",
    description=(
        "Statuspage's manage API v1, served by Beacon. Send `Authorization: OAuth <key>`. "
        "A read-only key may only read: every POST, PUT, PATCH or DELETE answers 403. "
        "An expired or revoked key answers 401."
    ),
    urls_namespace="api-v1",
    auth=[AuthorizationHeader(), ApiKeyParameter()],
    parser=StatuspageBodies(),
    docs_url="/docs",
    openapi_url="/openapi.json",
)


# The statuses the handlers below answer with, each with the error body: merged into every
# route's `response=` so that the OpenAPI document describes them too.
ERROR_RESPONSES: dict[int, type[schemas.Error]] = dict.fromkeys(
    (400, 401, 403, 404, 422, 429), schemas.Error
)


def error_body(request: HttpRequest, message: str, status: int) -> HttpResponse:
    # Statuspage clients read either key.
    return api.create_response(request, {"error": message, "message": message}, status=status)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc):
    return error_body(request, "Could not authenticate", 401)


@api.exception_handler(ApiKeyExpired)
def _expired(request: HttpRequest, exc):
    return error_body(request, "This API key has expired: ask for a new one.", 401)


@api.exception_handler(ReadOnlyKey)
def _read_only(request: HttpRequest, exc):
    message = f"This API key is read-only: it may not {exc.method}. Use a key with the write scope."
    return error_body(request, message, 403)


@api.exception_handler(RateLimited)
def _rate_limited(request: HttpRequest, exc):
    limit = settings.BEACON_API_RATE_LIMIT_PER_MINUTE
    message = f"Rate limit exceeded: {limit} requests a minute per key."
    response = error_body(request, message, 429)
    response["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(NinjaValidationError)
def _invalid(request: HttpRequest, exc):
    return error_body(request, _describe(exc.errors), 400)


@api.exception_handler(ValidationError)
def _rejected(request: HttpRequest, exc):
    return error_body(request, _describe_django(exc), 422)


@api.exception_handler(PermissionDenied)
def _forbidden(request: HttpRequest, exc):
    return error_body(request, str(exc) or "Your key's owner may not do this.", 403)


@api.exception_handler(Http404)
@api.exception_handler(ObjectDoesNotExist)
def _not_found(request: HttpRequest, exc):
    return error_body(request, str(exc) or "Not found.", 404)


@api.exception_handler(IntegrityError)
def _owner_gone(request: HttpRequest, exc):
    """A write naming its key's owner (an update's author, a status change's actor) whose
    owner was deleted while it ran: the key no longer works, nothing was written."""
    record = getattr(request, "auth", None)
    if isinstance(record, KeyRecord) and not User.objects.filter(pk=record.owner_pk).exists():
        return error_body(request, "This API key's owner no longer exists.", 401)
    raise exc


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc):
    # ninja wraps whatever the body parser raised in a vague "Cannot parse request body":
    # the parser's own 400 says what is wrong.
    if isinstance(exc.__cause__, HttpError):
        exc = exc.__cause__
    return error_body(request, str(exc), exc.status_code)


def _describe(errors: list[dict]) -> str:
    parts = []
    for error in errors:
        loc = list(error.get("loc", ()))
        while loc and loc[0] in ("body", "payload"):  # ninja's envelope, not a field named body
            loc.pop(0)
        where = ".".join(str(p) for p in loc)
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg", ""))
    return "; ".join(parts) or "Invalid request."


def _describe_django(error: ValidationError) -> str:
    if hasattr(error, "message_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items())
    return " ".join(error.messages)


def page_or_404(page_id: str) -> PageSettings:
    page = PageSettings.load()
    if page.public_id != page_id:
        raise Http404(f"No page {page_id!r}.")
    return page


def require_perm(request: HttpRequest, *perms: str) -> None:
    """The key's owner must hold these Django permissions (as in the admin), as the primary
    had them when the key's record was made (within AUTH_CACHE_SECONDS), also for reads
    from the replica."""
    record = getattr(request, "auth", None)
    if not isinstance(record, KeyRecord) or not record.has_perms(*perms):
        username = record.owner_username if isinstance(record, KeyRecord) else ""
        raise PermissionDenied(f"{username} may not do this ({', '.join(perms)}).")


P = ParamSpec("P")


def replica_read(view: Callable[P, object]) -> Callable[P, object]:
    """A read whose rows may come from the database replica (statuspage/db_router.py).

    The key was checked before the view runs, against the primary's rows (or their record
    of at most AUTH_CACHE_SECONDS, statuspage/api_v1/keys.py); a QuerySet the view answers
    is read here, inside the scope, not later by the serialiser.
    """

    @functools.wraps(view)
    def read(*args: P.args, **kwargs: P.kwargs) -> object:
        with reading_from_replica():
            result = view(*args, **kwargs)
            return list(result) if isinstance(result, QuerySet) else result

    return read


def empty_response(status: int) -> HttpResponse:
    """201/202/204 without a body, and without a content type that promises one."""
    response = HttpResponse(status=status)
    del response["Content-Type"]
    return response


def unknown_path(request: HttpRequest) -> JsonResponse:
    """Statuspage endpoints Beacon has not got (templates, SMS, metrics…): a JSON 404 a
    client can read, not the public site's HTML page."""
    message = f"Beacon has no {request.path} endpoint."
    return JsonResponse({"error": message, "message": message}, status=404)


# Request envelopes


def _one_line(value: str) -> str:
    if refused := control_character_error(value):
        raise ValueError(refused)
    return value


def _text(value: str) -> str:
    if refused := control_character_error(value, multiline=True):
        raise ValueError(refused)
    return value


# Names and URLs reach email headers, calendar lines and file names; bodies keep their lines.
# A control character in either is a 400, like any other bad value.
OneLine = Annotated[str, AfterValidator(_one_line)]
Text = Annotated[str, AfterValidator(_text)]


class Fields(Schema):
    """An envelope's content: ninja's Schema would read any value's attributes, so a string
    or a list sent in place of the object would pass as an empty body."""

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, value: Any) -> Any:
        inner = value._obj if isinstance(value, DjangoGetter) else value
        if not isinstance(inner, dict):
            raise ValueError("must be a JSON object")
        return value


def page_window(page: int, size: int) -> slice:
    """Rows of a 1-based `page` of `size` (at most MAX_PER_PAGE) rows."""
    size = min(size, MAX_PER_PAGE)
    return slice((page - 1) * size, page * size)


class Paging(Schema):
    """Statuspage's `page` and `per_page` (since 2023 every list is paginated)."""

    page: int = Field(1, ge=1, le=LAST_PAGE, description="1-based.")
    per_page: int = Field(MAX_PER_PAGE, ge=1, description="At most 100.")

    def window(self) -> slice:
        return page_window(self.page, self.per_page)


def components_named(component_ids: list[str], *, field: str) -> list[Component]:
    """The components with these public ids, in the order given, each once; an unknown id
    is a 422 on `field`."""
    wanted = list(dict.fromkeys(component_ids))
    if not wanted:  # most writes name none: not even an empty query's compiling
        return []
    found = {c.public_id: c for c in Component.objects.filter(public_id__in=wanted)}
    unknown = [component_id for component_id in wanted if component_id not in found]
    if unknown:
        raise ValidationError({field: f"No component {', '.join(map(repr, unknown))}."})
    return [found[component_id] for component_id in wanted]

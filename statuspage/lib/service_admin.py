"""Admin pages shared by every app's admin: saves that call services, and read-only records.

A service refuses bad input with a ValidationError inside its transaction; `call_service`
carries it out as ServiceRejected, and ServiceFormAdmin shows the same form again with the
service's reasons on it (the attempt was rolled back with its transaction).
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, cast

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Model
from django.http import HttpRequest, HttpResponse

_P = ParamSpec("_P")
_T = TypeVar("_T")
_ModelT = TypeVar("_ModelT", bound=Model)
_FormT = TypeVar("_FormT", bound=forms.BaseForm)

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin
else:

    class _ModelAdmin(admin.ModelAdmin, Generic[_ModelT]):
        """ModelAdmin, generic in its model at run time too, as django-stubs has it for mypy
        (an app's admin can say `ServiceFormAdmin[Incident]`)."""


class ServiceRejected(Exception):
    """A service refused the form's input; carries its ValidationError out of the transaction."""

    def __init__(self, error: ValidationError):
        super().__init__(error)
        self.error = error


def call_service(service: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    try:
        return service(*args, **kwargs)
    except ValidationError as error:
        raise ServiceRejected(error) from error


class ServiceFormAdmin(_ModelAdmin[_ModelT]):
    """An admin whose saves call services: a refused save shows the same form again, with
    the service's reasons on it (the attempt was rolled back with its transaction)."""

    def form_with_service_error(self, request: HttpRequest, form: type[_FormT]) -> type[_FormT]:
        error = getattr(request, "service_error", None)
        if error is not None:
            # type() with `form` as the base makes a subclass of it, which mypy cannot see.
            form = cast(type[_FormT], type(form.__name__, (form,), {"service_error": error}))
        return form

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceRejected as rejected:
            # Carried on the request to the second render's get_form (read back above).
            request.service_error = rejected.error  # type: ignore[attr-defined]
            return super().changeform_view(request, object_id, form_url, extra_context)


class ReadOnlyAdmin(_ModelAdmin[_ModelT]):
    """A record staff read and never write here (histories, ledgers, the audit trail): only
    the code that keeps it adds, changes or deletes rows."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: _ModelT | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: _ModelT | None = None) -> bool:
        return False

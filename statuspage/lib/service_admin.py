"""Admin pages shared by every app's admin: saves that call services, and read-only records.

A service refuses bad input with a ValidationError inside its transaction; `call_service`
carries it out as ServiceRejected, and ServiceFormAdmin shows the same form again with the
service's reasons on it (the attempt was rolled back with its transaction).
"""

from django.contrib import admin
from django.core.exceptions import ValidationError


class ServiceRejected(Exception):
    """A service refused the form's input; carries its ValidationError out of the transaction."""

    def __init__(self, error: ValidationError):
        super().__init__(error)
        self.error = error


def call_service(service, **kwargs):
    try:
        return service(**kwargs)
    except ValidationError as error:
        raise ServiceRejected(error) from error


class ServiceFormAdmin(admin.ModelAdmin):
    """An admin whose saves call services: a refused save shows the same form again, with
    the service's reasons on it (the attempt was rolled back with its transaction)."""

    def form_with_service_error(self, request, form):
        error = getattr(request, "service_error", None)
        if error is not None:
            form = type(form.__name__, (form,), {"service_error": error})
        return form

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceRejected as rejected:
            request.service_error = rejected.error
            return super().changeform_view(request, object_id, form_url, extra_context)


class ReadOnlyAdmin(admin.ModelAdmin):
    """A record staff read and never write here (histories, ledgers, the audit trail): only
    the code that keeps it adds, changes or deletes rows."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

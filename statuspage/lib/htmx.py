"""The request of a view that reads `request.htmx`, as django-htmx's middleware leaves it.

django-htmx sets the attribute without declaring it on HttpRequest; its documentation asks
each project to declare this subclass for the type checker. Only annotations use it: every
request a view gets is a plain HttpRequest that the middleware gave `htmx`.
"""

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails

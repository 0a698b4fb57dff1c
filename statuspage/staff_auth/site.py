"""Beacon's admin site: signed in means password *and* second factor.

Every admin view, Beacon's own included (they are wrapped by `admin_view`), sends a session
that has only passed the password to the second step, for GET and POST alike, before the
view runs. Only signing out works half signed in.
"""

from functools import update_wrapper

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect

from statuspage.staff_auth import services
from statuspage.staff_auth.links import with_next


class BeaconAdminSite(admin.AdminSite):
    site_header = "Beacon staff"
    site_title = "Beacon staff"
    index_title = "Status page administration"

    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and self.second_factor_passed(request)

    @staticmethod
    def second_factor_passed(request: HttpRequest) -> bool:
        user = request.user
        assert user.is_authenticated  # asked only of a session signed in by password
        return services.second_factor_passed(user)

    def second_step_pending(self, request: HttpRequest) -> bool:
        """Signed in by password as active staff, and the second factor is still owed."""
        user = request.user
        return user.is_active and user.is_staff and not self.second_factor_passed(request)

    def second_step_redirect(self, request: HttpRequest, next_url: str) -> HttpResponseRedirect:
        if not url_has_allowed_host_and_scheme(
            next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            next_url = reverse("admin:index", current_app=self.name)
        return HttpResponseRedirect(
            with_next(reverse("admin:two_factor", current_app=self.name), next_url)
        )

    def admin_view(self, view, cacheable=False):
        checked = super().admin_view(view, cacheable)

        def inner(request, *args, **kwargs):
            if self.second_step_pending(request):
                if request.path == reverse("admin:logout", current_app=self.name):
                    return csrf_protect(never_cache(view))(request, *args, **kwargs)
                return self.second_step_redirect(request, request.get_full_path())
            return checked(request, *args, **kwargs)

        return update_wrapper(never_cache(inner), view)

    @method_decorator(never_cache)
    def login(self, request, extra_context=None):
        next_url = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME, "")
        if request.method == "GET" and self.second_step_pending(request):
            return self.second_step_redirect(request, next_url)
        response = super().login(request, extra_context)
        if response.status_code == 302 and self.second_step_pending(request):
            # The password was right: the redirect LoginView chose goes through the second step.
            return self.second_step_redirect(request, response.get("Location", ""))
        return response

    def each_context(self, request):
        # Not at the top: the admin loads this module before models exist.
        from statuspage.models import PageSettings

        page = PageSettings.load()
        header = f"Beacon · {page.name}"  # the template escapes it
        return {
            **super().each_context(request),
            "site_header": header,
            "site_title": header,
            "page_logo_url": page.logo.url if page.logo else "",
            "two_factor_off": not settings.REQUIRE_2FA,
        }

    def index(self, request, extra_context=None):
        # Not at the top: the admin loads this module before models exist.
        from statuspage.staff_auth import console

        return super().index(
            request,
            {
                **console.console_context(request),
                **console.reports_chart_context(),
                **(extra_context or {}),
            },
        )

    def get_urls(self):
        # Not at the top: the admin loads this module before models exist; the views need them.
        from statuspage.staff_auth import console, sla, views

        own = [
            path(
                "console/live/",
                self.admin_view(lambda request: console.live_partial(self, request)),
                name="console_live",
            ),
            path(
                "console/reports-chart/",
                self.admin_view(lambda request: console.reports_chart_partial(self, request)),
                name="console_reports_chart",
            ),
            path(
                "console/incidents/<int:incident_id>/resolve/",
                self.admin_view(
                    lambda request, incident_id: console.resolve_incident(
                        request, incident_id, site=self
                    )
                ),
                name="console_resolve_incident",
            ),
            path(
                "console/components/<int:component_id>/status/",
                self.admin_view(console.set_status),
                name="console_set_status",
            ),
            path(
                "sla/",
                self.admin_view(lambda request: sla.sla_report_view(request, site=self)),
                name="sla_report",
            ),
            path("two-factor/", views.second_step, name="two_factor"),
            path("two-factor/set-up/", views.set_up_app, name="two_factor_set_up"),
            path("two-factor/set-up/qr.svg", views.set_up_qr, name="two_factor_qr"),
            path(
                "two-factor/backup-codes/",
                self.admin_view(views.backup_codes),
                name="two_factor_backup_codes",
            ),
            path("two-factor/manage/", self.admin_view(views.manage), name="two_factor_manage"),
            path(
                "two-factor/remove/<path:device_id>/",
                self.admin_view(views.remove_factor),
                name="two_factor_remove",
            ),
        ]
        return [*own, *super().get_urls()]

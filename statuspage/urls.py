from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path

from statuspage.api_v1 import base as api_v1_base
from statuspage.api_v1.routes import api as api_v1
from statuspage.public import api_v2, badges, feeds, internal, metrics, reports, uptime, views
from statuspage.staff_auth import passkeys

handler400 = views.bad_request
handler404 = views.not_found
handler500 = views.server_error

urlpatterns = [
    path("", views.status_page, name="status-page"),
    path("incidents/<str:code>/", views.incident_detail, name="incident-detail"),
    path("history/", views.history, name="history"),
    path("reports/", reports.report, name="reports"),
    path("reports/chart.svg", reports.chart, name="reports-chart"),
    path("robots.txt", views.robots_txt, name="robots-txt"),
    re_path(r"^metrics/?$", metrics.metrics, name="metrics"),
    path("admin/passkeys/", include((passkeys.urlpatterns, "otp_webauthn"))),
    path("admin/", admin.site.urls),
    path("api/v1/", api_v1.urls),
    re_path(r"^api/v1/", api_v1_base.unknown_path),
    path("", include("components.urls")),
    path("", include("incidents.urls")),
    *api_v2.urlpatterns,
    *feeds.urlpatterns,
    *badges.urlpatterns,
    *internal.urlpatterns,
    *uptime.urlpatterns,
]
if settings.SERVE_MEDIA:
    # Uploaded logos; a production proxy serves MEDIA_ROOT itself.
    urlpatterns.append(re_path(r"^media/(?P<path>.*)$", views.media, name="media"))

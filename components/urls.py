from django.urls import path

from components import views
from components.alerts import views as alert_views

# With and without the trailing slash, as cron jobs' curl lines are written both ways (a
# redirect would lose a POST). The token is checked by the view: a malformed one is a plain 404.
urlpatterns = [
    path("ping/<str:token>/", views.ping, name="ping"),
    path("ping/<str:token>", views.ping),
    path("ping/<str:token>/fail/", views.ping, {"failed": True}, name="ping-fail"),
    path("ping/<str:token>/fail", views.ping, {"failed": True}),
    path("integrations/<str:kind>/<str:token>/", alert_views.receive, name="alerts-receive"),
]

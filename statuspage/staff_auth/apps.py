from django.contrib.admin.apps import AdminConfig


class BeaconAdminConfig(AdminConfig):
    """django.contrib.admin with Beacon's site as `admin.site`, so every registration and
    `admin_site.admin_view` already in the apps asks for the second factor."""

    default_site = "statuspage.staff_auth.site.BeaconAdminSite"

"""Inbound alerts for the staff roles: Responders set integrations up, Admins may do everything."""

from django.db import migrations

RESPONDER_PERMISSIONS = [
    "add_alertintegration",
    "change_alertintegration",
    "delete_alertintegration",
    "view_alertintegration",
    "view_alertstate",
    "view_alertlog",
]
ALERT_MODELS = ["alertintegration", "alertstate", "alertlog"]


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations; the roles need them now.
    app_config = apps.get_app_config("components")
    app_config.models_module = True
    create_permissions(app_config, verbosity=0, using=schema_editor.connection.alias, apps=apps)
    app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    alerts = Permission.objects.filter(
        content_type__app_label="components", content_type__model__in=ALERT_MODELS
    )
    responders, _ = Group.objects.get_or_create(name="Responders")
    responders.permissions.add(*alerts.filter(codename__in=RESPONDER_PERMISSIONS))
    admins, _ = Group.objects.get_or_create(name="Admins")
    admins.permissions.add(*alerts)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    granted = Permission.objects.filter(
        content_type__app_label="components", content_type__model__in=ALERT_MODELS
    )
    for group in Group.objects.filter(name__in=["Responders", "Admins"]):
        group.permissions.remove(*granted)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("components", "0004_alerts"),
    ]

    operations = [migrations.RunPython(grant, revoke)]

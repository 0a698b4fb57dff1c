"""Subscribers for the staff roles: both may manage them and read what was sent."""

from django.db import migrations

GRANTED = [
    "add_subscriber",
    "change_subscriber",
    "delete_subscriber",
    "view_subscriber",
    "view_notificationevent",
    "view_delivery",
]
ROLES = ["Responders", "Admins"]


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations; the roles need them now.
    app_config = apps.get_app_config("incidents")
    app_config.models_module = True
    create_permissions(app_config, verbosity=0, using=schema_editor.connection.alias, apps=apps)
    app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    granted = Permission.objects.filter(content_type__app_label="incidents", codename__in=GRANTED)
    for name in ROLES:
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*granted)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    granted = Permission.objects.filter(content_type__app_label="incidents", codename__in=GRANTED)
    for group in Group.objects.filter(name__in=ROLES):
        group.permissions.remove(*granted)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("incidents", "0006_subscribers"),
    ]

    operations = [migrations.RunPython(grant, revoke)]

"""API keys for the staff roles: each may make, list and revoke keys of their own (the admin
keeps them to their own keys; a key never does more than its owner may)."""

from django.db import migrations

GRANTED = ["add_apikey", "view_apikey", "delete_apikey"]
ROLES = ["Responders", "Admins"]


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations; the roles need them now.
    app_config = apps.get_app_config("statuspage")
    app_config.models_module = True
    create_permissions(app_config, verbosity=0, using=schema_editor.connection.alias, apps=apps)
    app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    granted = Permission.objects.filter(content_type__app_label="statuspage", codename__in=GRANTED)
    for name in ROLES:
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*granted)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    granted = Permission.objects.filter(content_type__app_label="statuspage", codename__in=GRANTED)
    for group in Group.objects.filter(name__in=ROLES):
        group.permissions.remove(*granted)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("statuspage", "0003_api_keys"),
    ]

    operations = [migrations.RunPython(grant, revoke)]

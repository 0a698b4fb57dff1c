"""Health checks for the staff roles: Responders run them, Admins may do everything."""

from django.db import migrations

RESPONDER_PERMISSIONS = [
    "add_healthcheck",
    "change_healthcheck",
    "delete_healthcheck",
    "view_healthcheck",
    "view_checkresult",
]


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations; the roles need them now.
    app_config = apps.get_app_config("components")
    app_config.models_module = True
    create_permissions(app_config, verbosity=0, using=schema_editor.connection.alias, apps=apps)
    app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    components = Permission.objects.filter(content_type__app_label="components")
    responders, _ = Group.objects.get_or_create(name="Responders")
    responders.permissions.add(*components.filter(codename__in=RESPONDER_PERMISSIONS))
    admins, _ = Group.objects.get_or_create(name="Admins")
    admins.permissions.add(*components)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    check_models = ["healthcheck", "checkresult", "checklocationstate", "checkrollup"]
    granted = Permission.objects.filter(
        content_type__app_label="components", content_type__model__in=check_models
    )
    for group in Group.objects.filter(name__in=["Responders", "Admins"]):
        group.permissions.remove(*granted)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("components", "0002_health_checks"),
    ]

    operations = [migrations.RunPython(grant, revoke)]

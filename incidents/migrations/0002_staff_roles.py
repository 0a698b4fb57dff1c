"""The two staff roles: Responders run incidents day to day, Admins may change everything."""

from django.db import migrations

RESPONDER_PERMISSIONS = {
    "incidents": [
        "add_incident",
        "change_incident",
        "view_incident",
        "add_incidentupdate",
        "change_incidentupdate",
        "view_incidentupdate",
        "view_incidenttemplate",
        "view_affectedcomponent",
    ],
    "components": [
        "change_component",
        "view_component",
        "view_componentgroup",
        "view_componentstatuschange",
    ],
    "statuspage": ["view_pagesettings"],
}
ROLE_APPS = ["auth", "statuspage", "components", "incidents"]


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations; roles need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    responders, _ = Group.objects.get_or_create(name="Responders")
    for app_label, codenames in RESPONDER_PERMISSIONS.items():
        responders.permissions.add(
            *Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames)
        )
    admins, _ = Group.objects.get_or_create(name="Admins")
    admins.permissions.add(*Permission.objects.filter(content_type__app_label__in=ROLE_APPS))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Responders", "Admins"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("statuspage", "0001_initial"),
        ("components", "0001_initial"),
        ("incidents", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]

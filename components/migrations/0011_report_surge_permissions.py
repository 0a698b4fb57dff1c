"""Report surges for the staff roles: Responders and Admins read them (nobody writes them)."""

from django.db import migrations


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations; the roles need them now.
    app_config = apps.get_app_config("components")
    app_config.models_module = True
    create_permissions(app_config, verbosity=0, using=schema_editor.connection.alias, apps=apps)
    app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = Permission.objects.filter(
        content_type__app_label="components", codename="view_reportsurge"
    )
    for name in ("Responders", "Admins"):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*view)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = Permission.objects.filter(
        content_type__app_label="components", codename="view_reportsurge"
    )
    for group in Group.objects.filter(name__in=["Responders", "Admins"]):
        group.permissions.remove(*view)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("components", "0010_report_surges"),
    ]

    operations = [migrations.RunPython(grant, revoke)]

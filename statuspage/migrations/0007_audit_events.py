"""The audit trail (statuspage/audit.py), readable by the Admins group; Admins may also
see and delete sign-in failures (axes' access attempts), which lifts a lock-out."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# Per app: the Admins' new permissions. Responders get none of them.
GRANTED = {
    "statuspage": ["view_auditevent"],
    "axes": ["view_accessattempt", "delete_accessattempt"],
}


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations; the role needs them now.
    for label in GRANTED:
        app_config = apps.get_app_config(label)
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, using=schema_editor.connection.alias, apps=apps)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    group, _ = Group.objects.get_or_create(name="Admins")
    group.permissions.add(*_granted(apps))


def revoke(apps, schema_editor):
    for group in apps.get_model("auth", "Group").objects.filter(name="Admins"):
        group.permissions.remove(*_granted(apps))


def _granted(apps):
    Permission = apps.get_model("auth", "Permission")
    return [
        permission
        for label, codenames in GRANTED.items()
        for permission in Permission.objects.filter(
            content_type__app_label=label, codename__in=codenames
        )
    ]


class Migration(migrations.Migration):
    dependencies = [
        ("statuspage", "0006_api_key_scope_and_expiry"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("contenttypes", "0002_remove_content_type_name"),
        ("axes", "0010_accessattemptexpiration"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditEvent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("at", models.DateTimeField(db_index=True)),
                (
                    "actor_name",
                    models.CharField(
                        blank=True, db_index=True, max_length=150, verbose_name="username"
                    ),
                ),
                (
                    "action",
                    models.CharField(
                        choices=[
                            ("signed_in", "signed in"),
                            ("sign_in_failed", "sign-in failed"),
                            ("locked_out", "locked out"),
                            ("signed_out", "signed out"),
                            ("added", "added"),
                            ("changed", "changed"),
                            ("deleted", "deleted"),
                            ("api_key_created", "API key created"),
                            ("api_key_revoked", "API key revoked"),
                            ("two_factor_verified", "second factor verified"),
                            ("two_factor_failed", "second factor failed"),
                            ("two_factor_added", "second factor added"),
                            ("two_factor_removed", "second factor removed"),
                        ],
                        db_index=True,
                        max_length=32,
                    ),
                ),
                (
                    "source",
                    models.CharField(
                        choices=[
                            ("sign_in", "sign-in"),
                            ("admin", "admin"),
                            ("api", "management API"),
                            ("command", "command line"),
                        ],
                        db_index=True,
                        max_length=16,
                    ),
                ),
                ("target_type", models.CharField(blank=True, db_index=True, max_length=100)),
                ("target_id", models.CharField(blank=True, max_length=64)),
                (
                    "target_repr",
                    models.CharField(blank=True, max_length=200, verbose_name="target"),
                ),
                (
                    "ip_address",
                    models.CharField(blank=True, max_length=64, verbose_name="client address"),
                ),
                ("detail", models.JSONField(blank=True, default=dict)),
                (
                    "actor",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "audit event",
                "ordering": ["-at", "-id"],
            },
        ),
        migrations.RunPython(grant, revoke),
    ]

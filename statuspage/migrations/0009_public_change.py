from django.db import migrations, models


def create_the_row(apps, schema_editor):
    # Always one row, so that noting a change is one UPDATE.
    apps.get_model("statuspage", "PublicChange").objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [
        ("statuspage", "0008_audit_sign_in_is_the_password_step"),
    ]

    operations = [
        migrations.CreateModel(
            name="PublicChange",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("generation", models.CharField(blank=True, max_length=64)),
                ("changed_at", models.DateTimeField(null=True)),
            ],
            options={"verbose_name": "public change"},
        ),
        migrations.RunPython(create_the_row, migrations.RunPython.noop),
    ]

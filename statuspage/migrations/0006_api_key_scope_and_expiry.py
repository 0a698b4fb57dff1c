"""API keys may expire and may be read-only. Keys made before keep writing and never expire."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("statuspage", "0005_refuse_control_characters"),
    ]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="expires_at",
            field=models.DateTimeField(
                blank=True,
                help_text="From this moment the key is refused. Leave empty for a key that never expires.",
                null=True,
                verbose_name="expires",
            ),
        ),
        migrations.AddField(
            model_name="apikey",
            name="scope",
            field=models.CharField(
                choices=[("read", "Read only"), ("write", "Read and write")],
                default="write",
                help_text="A read-only key may only read (GET): every change is refused with 403.",
                max_length=5,
            ),
        ),
    ]

"""The management API's kept JSON compressed with lz4 on PostgreSQL 14 and later.

A fragment is written again on every change of what it shows (a long incident's is hundreds
of KB): lz4 stores it in less than half the time of the default pglz, at about the same size.
Only new values are compressed so; nothing else changes. Skipped where lz4 is not there (an
older or differently built PostgreSQL, SQLite).
"""

from django.db import DatabaseError, migrations, transaction

TABLES = (
    "statuspage_incidentfragment",
    "statuspage_subscriberfragment",
    "statuspage_cataloguefragment",
)


def compress_with_lz4(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or connection.pg_version < 140000:
        return
    for table in TABLES:
        try:
            with transaction.atomic(using=connection.alias):
                schema_editor.execute(
                    f'ALTER TABLE "{table}" ALTER COLUMN "body" SET COMPRESSION lz4'
                )
        except DatabaseError:  # built without lz4: the default stays
            return


def compress_as_default(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or connection.pg_version < 140000:
        return
    for table in TABLES:
        schema_editor.execute(f'ALTER TABLE "{table}" ALTER COLUMN "body" SET COMPRESSION DEFAULT')


class Migration(migrations.Migration):
    dependencies = [("statuspage", "0015_api_fragments")]

    operations = [migrations.RunPython(compress_with_lz4, compress_as_default)]

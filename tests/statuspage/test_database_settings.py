"""How settings.py configures the database from the environment."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOW = (
    "import json; from django.conf import settings; "
    "print(json.dumps({k: v.get('OPTIONS', {}) for k, v in settings.DATABASES.items()}))"
)


def database_options(**environ: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE")}
    env.update(DJANGO_SETTINGS_MODULE="statuspage.settings", **environ)
    code = f"import django; django.setup(); {SHOW}"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("replica", [False, True])
def test_postgresql_statements_are_prepared_unless_turned_off(replica):
    url = "postgres://beacon@db.example.test:5432/beacon"
    extra = {"DATABASE_REPLICA_URL": url.replace("db.", "replica.")} if replica else {}
    options = database_options(DATABASE_URL=url, **extra)
    for alias in options:
        assert options[alias]["server_side_binding"] is True
        assert options[alias]["prepare_threshold"] == 5
    off = database_options(DATABASE_URL=url, DATABASE_PREPARED_STATEMENTS="false", **extra)
    for alias in off:
        assert not {"server_side_binding", "prepare_threshold"} & set(off[alias])


def test_sqlite_is_left_as_it_is():
    options = database_options()
    assert "server_side_binding" not in options["default"]


@pytest.mark.django_db
def test_kept_api_json_is_compressed_with_lz4_on_postgresql():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's column compression")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' "
            "AND 'lz4' = ANY(enumvals)"
        )
        if cursor.fetchone() is None:
            pytest.skip("a PostgreSQL built without lz4: the migration leaves pglz")
        cursor.execute(
            "SELECT attrelid::regclass::text, attcompression FROM pg_attribute "
            "WHERE attname = 'body' AND attrelid::regclass::text LIKE 'statuspage_%%fragment'"
        )
        compression = dict(cursor.fetchall())
    assert compression == {
        "statuspage_incidentfragment": "l",
        "statuspage_subscriberfragment": "l",
        "statuspage_cataloguefragment": "l",
    }

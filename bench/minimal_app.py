"""The framework's ceiling: a Django app that returns preloaded bytes and does nothing else.

Settings, URLs and the WSGI application in one module, no middleware, no database. It
serves the exact bytes bench/run.py fetched from Beacon, under the same paths and content
types, read once at start from the manifest named by BENCH_MINIMAL_MANIFEST:

    {"/": ["/tmp/.../index.html", "text/html; charset=utf-8"], ...}

    BENCH_MINIMAL_MANIFEST=... gunicorn --pythonpath bench minimal_app:application
"""

import json
import os
from pathlib import Path

import django
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpResponse
from django.urls import path

BODIES: dict[str, tuple[bytes, str]] = {
    url: (Path(file).read_bytes(), content_type)
    for url, (file, content_type) in json.loads(
        Path(os.environ["BENCH_MINIMAL_MANIFEST"]).read_text()
    ).items()
}


def serve(request):
    body, content_type = BODIES[request.path]
    return HttpResponse(body, content_type=content_type)


urlpatterns = [path(url.lstrip("/"), serve) for url in BODIES]

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-minimal-app",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()

application = get_wsgi_application()

# Beacon for real deployments; docker-compose.yml runs it with PostgreSQL and Redis.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BEACON_VAR_DIR=/data

WORKDIR /app

# Dependencies first, so code changes do not reinstall them: the runtime lock, every package
# pinned and checked against its hash (`make lock` regenerates it from pyproject.toml).
COPY requirements.txt ./
RUN pip install --require-hashes -r requirements.txt

# The translation catalogues are compiled in a stage with GNU gettext, which the image does not
# need to carry; only the .mo files are copied over.
FROM base AS messages
RUN apt-get update \
    && apt-get install --yes --no-install-recommends gettext \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN SECRET_KEY=compilemessages-only BEACON_VAR_DIR=/tmp/build-var \
        python manage.py compilemessages --verbosity 0

FROM base
COPY . .
COPY --from=messages /app/locale ./locale
# Settings need a key and a writable var dir to load; neither is kept in the image.
RUN SECRET_KEY=collectstatic-only BEACON_VAR_DIR=/tmp/build-var \
        python manage.py collectstatic --noinput --verbosity 0 \
    && rm -rf /tmp/build-var \
    && useradd --system --uid 1000 --home-dir /app beacon \
    && mkdir -p /data \
    && chown beacon /data

USER beacon
VOLUME ["/data"]
EXPOSE 8000
# statuspage/gunicorn_conf.py: the access log (masked secret URLs, request ids).
CMD ["gunicorn", "-c", "python:statuspage.gunicorn_conf", "statuspage.wsgi", \
     "--bind", "0.0.0.0:8000", "--workers", "3"]

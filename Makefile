# Beacon: `make run` starts a demo page on embedded defaults, `make test` runs the suite.
# DATABASE_URL, REDIS_URL, EMAIL_URL, HOST and PORT are taken from the environment.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
WEB_WORKERS ?= 2
WORKER_CONCURRENCY ?= 2
VAR_DIR := $(or $(BEACON_VAR_DIR),var)
# Compiled translation catalogues, build products of locale/*/LC_MESSAGES/*.po (not in git).
MO_FILES := $(patsubst %.po,%.mo,$(wildcard locale/*/LC_MESSAGES/*.po))
ifeq ($(shell command -v msgfmt),)
MESSAGES := no-msgfmt
else
MESSAGES := $(MO_FILES)
endif

.PHONY: no-msgfmt bench-api bench-checks bench-misses bench-notify bench-recovery bench-scale bench-truth bench-uptime run \
	test lint \
	lock install bench bench-quick

install: $(STAMP) $(MESSAGES)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Install exactly what the lock pins, each file checked against its hash; reinstall only when the
# lock changed since the last install. requirements-dev.txt holds every package (runtime and
# dev); requirements.txt, the runtime part alone, is what the Dockerfile installs. The project
# itself runs from this tree and is not installed as a package.
$(STAMP): requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.txt
	touch $@

# Each catalogue is compiled when its .po changed. Without GNU gettext (msgfmt) the page still
# runs, in English only: one notice instead of the catalogues (MESSAGES, above), no failure.
no-msgfmt:
	@echo "Notice: GNU gettext (msgfmt) is not installed, so the page runs in English only."

locale/%.mo: locale/%.po | $(STAMP)
	$(BIN)/python manage.py compilemessages --locale '$(word 2,$(subst /, ,$@))' --ignore '.venv' --verbosity 0

# Regenerate the lock from pyproject.toml's ranges. Pins that still fit the ranges are kept;
# `make lock LOCK_ARGS=--upgrade` moves every pin to the newest release that fits,
# `make lock LOCK_ARGS='--upgrade-package django'` only that one. The runtime lock is the part
# of the dev lock that the runtime needs, at the same versions (the dev lock constrains it).
# Hashes are PyPI's, whatever index or wheel folder this machine's pip is configured with
# (LOCK_INDEX_URL to use a mirror).
LOCK_INDEX_URL ?= https://pypi.org/simple
PIP_COMPILE = env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL \
	PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND='make lock' \
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
	--index-url '$(LOCK_INDEX_URL)' --no-emit-index-url --no-emit-find-links

lock: $(STAMP)
	$(PIP_COMPILE) $(LOCK_ARGS) --extra dev --output-file requirements-dev.txt pyproject.toml
	$(PIP_COMPILE) --constraint requirements-dev.txt --output-file requirements.txt pyproject.toml

run: $(STAMP) $(MESSAGES)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py seed_demo --if-empty --url 'http://$(HOST):$(PORT)'
	@login="$$($(BIN)/python manage.py ensure_admin)" || exit 1; \
	if [ -n "$$EMAIL_URL" ]; then mail="sent through EMAIL_URL"; \
	else mail="written to $(VAR_DIR)/mail/"; fi; \
	trap 'trap - INT TERM EXIT; kill $$web $$worker $$beat 2>/dev/null; wait' INT TERM EXIT; \
	$(BIN)/gunicorn -c python:statuspage.gunicorn_conf statuspage.wsgi \
		--bind '$(HOST):$(PORT)' --workers $(WEB_WORKERS) & web=$$!; \
	$(BIN)/celery -A statuspage worker -Q default,checks,notify,snapshots \
		--concurrency $(WORKER_CONCURRENCY) --loglevel=info & worker=$$!; \
	$(BIN)/celery -A statuspage beat --loglevel=info & beat=$$!; \
	sleep 2; \
	echo; \
	echo "=================================================================="; \
	echo "  Beacon is running at   http://$(HOST):$(PORT)/"; \
	echo "  Staff admin            http://$(HOST):$(PORT)/admin/"; \
	echo "  $$login"; \
	echo "  Emails are $$mail"; \
	echo "  Press Ctrl-C to stop the web server, the worker and beat."; \
	echo "=================================================================="; \
	echo; \
	wait -n

test: $(STAMP) $(MESSAGES)
	BEACON_VAR_DIR='$(CURDIR)/var/test' $(BIN)/python tests/shards.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Load and scale benchmark (bench/run.py; needs wrk and nginx, PostgreSQL and Redis on
# 127.0.0.1). Writes bench/results/<timestamp>.json and the tables in docs/performance.md.
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/checks.py
	$(BIN)/python bench/notify.py

# Health checks at scale only: 2,000 checks every 30 s through the real beat and worker.
bench-checks: $(STAMP)
	$(BIN)/python bench/checks.py $(BENCH_CHECKS_ARGS)

# Subscriber notifications only: one incident to 10,000 and 100,000 subscribers through the
# real worker and a local SMTP server (Postfix's smtp-sink, fetched without installing it).
bench-notify: $(STAMP)
	$(BIN)/python bench/notify.py $(BENCH_NOTIFY_ARGS)

# How long subscribers wait when a worker or Redis is killed mid-send (its own Redis on 6390;
# about four minutes). Writes bench/results/recovery-*.json and docs/performance.md#recovery.
bench-recovery: $(STAMP)
	$(BIN)/python bench/recovery.py $(BENCH_RECOVERY_ARGS)

# What a made-up /incidents/<code>/ or /history/?page=N costs beside a cached page, and how
# many queries it runs (about three minutes; not in `bench`). Writes docs/performance.md#misses.
bench-misses: $(STAMP)
	$(BIN)/python bench/misses.py $(BENCH_MISSES_ARGS)

# Management API v1 only: five GET endpoints under wrk beside the same bytes from memory,
# component and incident writes with a read after each, a profile of one list of 100 incidents,
# and issue 20's targets met or not (exits 1 when one is missed; not in `bench`).
bench-api: $(STAMP)
	$(BIN)/python bench/api.py $(BENCH_API_ARGS)

# 1, 2 and 3 web hosts (gunicorn, follower, the shipped nginx each) behind a front nginx:
# requests/s and p99 per number of hosts, and the time for a change to reach every host
# (about ten minutes; not in `bench`). Writes docs/performance.md#scaling-out.
bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py $(BENCH_SCALE_ARGS)

# Issue 17 end to end on a private PostgreSQL and Redis: a failing check to the public page and
# the first subscriber email, a silent incident to its reminder, a report surge to staff's
# alert, and reports a second with PostgreSQL stopped (about four minutes; not in `bench`).
# Writes bench/results/truth-*.json and docs/performance.md#truth-before-the-crowd.
bench-truth: $(STAMP)
	$(BIN)/python bench/truth.py $(BENCH_TRUTH_ARGS)

# The uptime history (/uptime/) of 1,000 components x 365 days beside /, on the database the
# environment names, rolled back afterwards (not in `bench`). docs/performance.md#uptime-history.
bench-uptime: $(STAMP)
	$(BIN)/python bench/uptime.py $(BENCH_UPTIME_ARGS)

bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick $(BENCH_ARGS)

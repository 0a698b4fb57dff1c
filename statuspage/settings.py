"""Beacon settings, read from the environment.

With no environment at all Beacon runs on embedded defaults: SQLite, a file-system Celery
broker, a file-based cache and emails written to var/mail/. Production sets DATABASE_URL,
REDIS_URL (or REDIS_SENTINELS), SECRET_KEY, ALLOWED_HOSTS and EMAIL_URL.
"""

import secrets
from datetime import timedelta
from pathlib import Path

import environ

from statuspage.lib import redis_sentinel

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("BEACON_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()


def _secret_key_from_var() -> str:
    """A random key kept in var/ so embedded installs survive restarts without configuration."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="") or _secret_key_from_var()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # The admin with Beacon's site: staff pass a second factor (statuspage/staff_auth/).
    "statuspage.staff_auth.apps.BeaconAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_otp_webauthn",
    "ninja",  # serves its Swagger UI from static files, not a CDN
    "template_partials",
    "axes",  # before statuspage: its sign-in signal receivers run first (statuspage/access.py)
    "statuspage",
    "components",
    "incidents",
]

MIDDLEWARE = [
    # Outermost: the Content-Security-Policy and the other security headers on every answer,
    # snapshots and error pages included (statuspage/lib/security_headers.py).
    "statuspage.lib.security_headers.SecurityHeadersMiddleware",
    # Then: a public read is answered from its snapshot without any other middleware.
    "statuspage.middleware.SnapshotMiddleware",
    # The language of what is rendered: the URL's prefix, else the page's default.
    "statuspage.middleware.page_language",
    # Visitors' problem reports need nothing below: they are answered here (docs/reports.md).
    "statuspage.middleware.visitor_reports",
    # Statuspage clients may add ".json" to management API paths.
    "statuspage.middleware.api_v1_paths",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): whether this session passed its second factor.
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Sign-in, admin and API events are recorded with the address of the request they came from.
    "statuspage.audit.request_middleware",
    # Last: a refused sign-in becomes the lock-out page (statuspage/access.py).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "statuspage.urls"
WSGI_APPLICATION = "statuspage.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                # The language switcher on the subscription pages and report forms.
                "statuspage.public.languages.language_context",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'beacon.sqlite3'}")
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat write to the same file: wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
# PostgreSQL's prepared statements: a statement run again on the same kept connection is
# neither parsed nor planned again (a third of PostgreSQL's CPU per management API write,
# docs/performance.md). Parameters are then sent apart from the SQL (server-side binding).
# Turn off behind a pooler in transaction mode that cannot keep them (PgBouncer before 1.21).
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)


def _prepare_statements(database: dict) -> None:
    if DATABASE_PREPARED_STATEMENTS and database["ENGINE"].endswith("postgresql"):
        options = database.setdefault("OPTIONS", {})
        options.setdefault("server_side_binding", True)  # unless the URL's query sets them
        options.setdefault("prepare_threshold", 5)


_prepare_statements(DATABASES["default"])
# A PostgreSQL streaming replica for the reads that may be a few seconds old (API v2 and
# history renders on a snapshot miss, management API reads; statuspage/db_router.py). Unset,
# every query goes to DATABASE_URL. Past the lag limit, or unreachable, reads use the primary.
DATABASE_REPLICA_URL = env.str("DATABASE_REPLICA_URL", default="")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = env.db_url_config(DATABASE_REPLICA_URL)
    DATABASES["replica"].setdefault("CONN_MAX_AGE", DATABASES["default"]["CONN_MAX_AGE"])
    # A kept connection to a replica that restarted is noticed before a request uses it.
    DATABASES["replica"].setdefault("CONN_HEALTH_CHECKS", True)
    # A replica that does not answer costs a request two seconds once, not a hang.
    DATABASES["replica"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 2)
    _prepare_statements(DATABASES["replica"])
    # Tests read the replica alias from the test database itself.
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    DATABASE_ROUTERS = ["statuspage.db_router.ReplicaRouter"]
BEACON_REPLICA_MAX_LAG_SECONDS = env.float("DATABASE_REPLICA_MAX_LAG_SECONDS", default=10.0)
# How long a process trusts its last look at the replica's lag, and waits after failing to
# reach it before trying again.
BEACON_REPLICA_CHECK_SECONDS = env.float("DATABASE_REPLICA_CHECK_SECONDS", default=1.0)
BEACON_REPLICA_RETRY_SECONDS = env.float("DATABASE_REPLICA_RETRY_SECONDS", default=10.0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
# Redis behind Sentinel (docs/deployment.md): the cache, the rate limits and the broker follow
# whichever server the sentinels name master. When set, it takes the place of REDIS_URL.
REDIS_SENTINELS = redis_sentinel.parse_sentinels(env.str("REDIS_SENTINELS", default=""))
REDIS_SENTINEL_MASTER = env.str("REDIS_SENTINEL_MASTER", default="mymaster")
REDIS_SENTINEL_DB = env.int("REDIS_SENTINEL_DB", default=0)
# Fail fast when Redis (or a sentinel) is away: pages fall back to their copies on disk.
_REDIS_TIMEOUTS = {"socket_connect_timeout": 0.5, "socket_timeout": 1.0}
_SENTINEL_KWARGS = {
    "password": env.str("REDIS_SENTINEL_PASSWORD", default="") or None,
    **_REDIS_TIMEOUTS,
}
if REDIS_SENTINELS or REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="beacon"),
            "OPTIONS": dict(_REDIS_TIMEOUTS),
        }
    }
    if REDIS_SENTINELS:
        CACHES["default"] |= {
            "BACKEND": "statuspage.lib.redis_sentinel.SentinelRedisCache",
            "LOCATION": REDIS_SENTINEL_MASTER,
            "OPTIONS": {
                "sentinels": REDIS_SENTINELS,
                "master_name": REDIS_SENTINEL_MASTER,
                "db": REDIS_SENTINEL_DB,
                "password": env.str("REDIS_PASSWORD", default="") or None,
                "sentinel_kwargs": _SENTINEL_KWARGS,
                **_REDIS_TIMEOUTS,
            },
        }
else:
    # Shared by the web server, the worker and beat, unlike a per-process memory cache.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
            # Past the default 300, culling would drop snapshots and latency counters at random.
            "OPTIONS": {"MAX_ENTRIES": 20_000},
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Brute-force protection (django-axes; docs/security.md). A sign-in is refused for
# LOGIN_COOLOFF_MINUTES once a username, or a client address, has failed LOGIN_FAILURE_LIMIT
# times within that time: one address spraying many usernames and many addresses on one
# username are both stopped. The address is statuspage.lib.ratelimit.client_ip (TRUSTED_PROXY_HOPS).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "statuspage.access.client_address"
AXES_USERNAME_CALLABLE = "statuspage.access.username_tried"
AXES_LOCKOUT_CALLABLE = "statuspage.access.lockout_response"
AXES_RESET_ON_SUCCESS = True
# Sign-ins are in the audit trail (statuspage.models.AuditEvent), not in axes' own log.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False

LANGUAGE_CODE = "en"
# The languages shipped; a page enables some of them and picks its default (PageSettings).
LANGUAGES = [
    ("en", "English"),
    ("de", "Deutsch"),
    ("fr", "Français"),
    ("es", "Español"),
    ("ja", "日本語"),
    ("pt-br", "Português (Brasil)"),
]
# The server's own zone; the page's display zone is a page setting editable in the admin.
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
# Catalogues (locale/<language>/LC_MESSAGES/django.po): see docs/architecture.md, Translations.
# No LocaleMiddleware: the language is the URL's prefix, else the page's default
# (statuspage.middleware.page_language; docs/architecture.md, Translations).
LOCALE_PATHS = [BASE_DIR / "locale"]
# Beacon's named date and number formats per locale (statuspage.lib.local_format).
FORMAT_MODULE_PATH = ["statuspage.formats"]
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env.bool("STATIC_MANIFEST", default=not DEBUG)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
SERVE_MEDIA = env.bool("SERVE_MEDIA", default=True)

# Seconds per exchange with the mail server. Without a limit a server that accepts the
# connection and never answers holds every notify worker for good.
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)
EMAIL_URL = env.str("EMAIL_URL", default="")
if EMAIL_URL:
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(VAR_DIR / "mail")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="status@localhost")
# DKIM signing of every email sent over SMTP (statuspage/mail_dkim.py), when a key is set:
# an RSA key in PEM (the text, "\n" for line breaks allowed, or a file), the DNS selector,
# and the signing domain (the From address's by default). A key that cannot sign stops
# every process at startup.
BEACON_DKIM_PRIVATE_KEY = env.str("DKIM_PRIVATE_KEY", default="", multiline=True)
BEACON_DKIM_PRIVATE_KEY_FILE = env.str("DKIM_PRIVATE_KEY_FILE", default="")
BEACON_DKIM_SELECTOR = env.str("DKIM_SELECTOR", default="")
BEACON_DKIM_DOMAIN = env.str("DKIM_DOMAIN", default="")
if (BEACON_DKIM_PRIVATE_KEY or BEACON_DKIM_PRIVATE_KEY_FILE) and vars().get(
    "EMAIL_BACKEND"
) == "django.core.mail.backends.smtp.EmailBackend":
    EMAIL_BACKEND = "statuspage.mail_dkim.EmailBackend"

# Staff sign-in (docs/security.md): a second factor (authenticator app, backup code or
# passkey) after the password. Off, staff who have not enrolled sign in with a password alone.
REQUIRE_2FA = env.bool("REQUIRE_2FA", default=True)
OTP_TOTP_ISSUER = "Beacon"
# The admin lists everyone's devices to superusers, never their secrets or backup codes.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# Each wrong code doubles the wait before the next try (1 s, 2 s, 4 s …) for that device.
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1
# Passkeys are a second factor only; the relying party is the host the admin is reached at
# (WEBAUTHN_RP_ID to share passkeys across subdomains), the allowed origin its scheme + host.
OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN = False
OTP_WEBAUTHN_RP_NAME = "Beacon"
OTP_WEBAUTHN_RP_ID = env.str("WEBAUTHN_RP_ID", default="")
OTP_WEBAUTHN_RP_ID_CALLABLE = "statuspage.staff_auth.passkeys.relying_party_id"
OTP_WEBAUTHN_HELPER_CLASS = "statuspage.staff_auth.passkeys.PasskeyHelper"
OTP_WEBAUTHN_ALLOWED_ORIGINS = env.list("WEBAUTHN_ORIGINS", default=[])
# Empty, the allowed origin is the request's own (statuspage/staff_auth/passkeys.py), which the
# package's check does not know of.
SILENCED_SYSTEM_CHECKS = [] if OTP_WEBAUTHN_ALLOWED_ORIGINS else ["otp_webauthn.E030"]

BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
# How many proxies in front of Beacon append to X-Forwarded-For (nginx: 1; a CDN before
# nginx: 2). The visitor's address, for rate limits, is that many entries from the end.
BEACON_TRUSTED_PROXY_HOPS = env.int("TRUSTED_PROXY_HOPS", default=1 if BEHIND_TLS_PROXY else 0)

# The locked-down page (docs/security.md, "Headers"). Behind a TLS proxy every plain-HTTP
# request is redirected to HTTPS and browsers are told to use nothing else (HSTS).


def _set_or(name, cast, default):
    """docker-compose passes unset variables on as "": those take the default too."""
    return cast(name) if env.str(name, default="") else default


SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _set_or("SECURE_COOKIES", env.bool, BEHIND_TLS_PROXY)
# The CSRF token reaches forms as a hidden input: no script needs to read the cookie.
CSRF_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = _set_or("SECURE_SSL_REDIRECT", env.bool, BEHIND_TLS_PROXY)
# Prometheus scrapes gunicorn directly over plain HTTP, past the TLS proxy (docs/metrics.md).
SECURE_REDIRECT_EXEMPT = [r"^metrics/?$"]
SECURE_HSTS_SECONDS = _set_or("HSTS_SECONDS", env.int, 365 * 24 * 3600 if BEHIND_TLS_PROXY else 0)
# Covers names under the page's own host (status.example.com), not the company's domain.
SECURE_HSTS_INCLUDE_SUBDOMAINS = _set_or("HSTS_INCLUDE_SUBDOMAINS", env.bool, True)
SECURE_HSTS_PRELOAD = _set_or("HSTS_PRELOAD", env.bool, False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Preloading commits the whole registrable domain (example.com and every name under it) to
# HTTPS in browsers' built-in lists, and hstspreload.org accepts only that domain: a decision
# for the domain's owner, which a status page on a subdomain cannot make for them. HSTS_PRELOAD
# adds the directive when they have made it (docs/security.md).
SILENCED_SYSTEM_CHECKS += ["security.W021"]

# Celery: Redis in production; with neither REDIS_SENTINELS nor REDIS_URL a file-system
# broker needs no server.
if REDIS_SENTINELS:
    CELERY_BROKER_URL = redis_sentinel.broker_url(
        REDIS_SENTINELS,
        db=REDIS_SENTINEL_DB,
        password=env.str("REDIS_PASSWORD", default=""),
    )
else:
    CELERY_BROKER_URL = REDIS_URL or "filesystem://"
if not (REDIS_SENTINELS or REDIS_URL):
    _broker_dir = VAR_DIR / "broker"
    (_broker_dir / "queue").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # Longer than any task runs, so a late ack is never redelivered while still running.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    if REDIS_SENTINELS:
        CELERY_BROKER_TRANSPORT_OPTIONS |= {
            "master_name": REDIS_SENTINEL_MASTER,
            "sentinel_kwargs": _SENTINEL_KWARGS,
        }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Uptime: how much an hour in each state costs. Maintenance is excluded from the day.
BEACON_UPTIME_WEIGHTS = {
    "major_outage": env.float("UPTIME_WEIGHT_MAJOR_OUTAGE", default=1.0),
    "partial_outage": env.float("UPTIME_WEIGHT_PARTIAL_OUTAGE", default=0.3),
    "degraded_performance": env.float("UPTIME_WEIGHT_DEGRADED_PERFORMANCE", default=0.0),
}
BEACON_UPTIME_DAYS = 90
BEACON_PAST_INCIDENT_DAYS = 14
BEACON_PUBLIC_CACHE_SECONDS = env.int("PUBLIC_CACHE_SECONDS", default=24 * 3600)
# Render-on-write snapshots of the public outputs (statuspage/public/snapshots/).
BEACON_SNAPSHOT_DIR = Path(env.str("SNAPSHOT_DIR", default=str(VAR_DIR / "snapshots")))
# How often a process looks for a newer generation, and how long a generation must be still
# before it is rebuilt (a burst of changes then costs one or two rebuilds).
BEACON_SNAPSHOT_GENERATION_CHECK = env.float("SNAPSHOT_GENERATION_CHECK", default=0.2)
BEACON_SNAPSHOT_SETTLE_SECONDS = env.float("SNAPSHOT_SETTLE_SECONDS", default=0.2)
BEACON_SNAPSHOT_MAX_STALE_SECONDS = env.float("SNAPSHOT_MAX_STALE_SECONDS", default=1.0)
BEACON_SNAPSHOT_PROBE_SECONDS = env.float("SNAPSHOT_PROBE_SECONDS", default=5.0)
# On a standby region's hosts (their database a streaming replica), the probe also follows
# the primary's changes: this often (docs/deployment.md, "A second region").
BEACON_STANDBY_PROBE_SECONDS = env.float("STANDBY_PROBE_SECONDS", default=1.0)
# The worker rebuilds the hot outputs after each change (render on write).
BEACON_SNAPSHOT_RENDER_ON_WRITE = env.bool("SNAPSHOT_RENDER_ON_WRITE", default=True)
# While changes keep coming (the generation did not settle before a rebuild), the worker spends
# at most this fraction of its time rebuilding: after such a rebuild the next waits its render
# time x (1/duty - 1), at most SNAPSHOT_REBUILD_MAX_GAP_SECONDS (as long as shared caches keep
# a page), or until the changes stop; 1 turns the pacing off. The first change after a calm is
# rebuilt at once; readers rebuild what they read meanwhile.
BEACON_SNAPSHOT_REBUILD_DUTY = env.float("SNAPSHOT_REBUILD_DUTY", default=0.2)
BEACON_SNAPSHOT_REBUILD_MAX_GAP_SECONDS = env.float(
    "SNAPSHOT_REBUILD_MAX_GAP_SECONDS", default=15.0
)

# Publishing every public output to an S3-compatible bucket after each change
# (statuspage/public/publish.py; off without a bucket), and purging the CDN in front
# (statuspage/public/cdn.py). Credentials: these, else boto3's chain (AWS_ACCESS_KEY_ID …).
BEACON_OBJECT_STORAGE_BUCKET = env.str("OBJECT_STORAGE_BUCKET", default="")
BEACON_OBJECT_STORAGE_ENDPOINT_URL = env.str("OBJECT_STORAGE_ENDPOINT_URL", default="")
BEACON_OBJECT_STORAGE_REGION = env.str("OBJECT_STORAGE_REGION", default="")
BEACON_OBJECT_STORAGE_ACCESS_KEY_ID = env.str("OBJECT_STORAGE_ACCESS_KEY_ID", default="")
BEACON_OBJECT_STORAGE_SECRET_ACCESS_KEY = env.str("OBJECT_STORAGE_SECRET_ACCESS_KEY", default="")
BEACON_OBJECT_STORAGE_PREFIX = env.str("OBJECT_STORAGE_PREFIX", default="")
# "path" or "virtual"; empty: path-style with an endpoint URL, boto3's choice without.
BEACON_OBJECT_STORAGE_ADDRESSING_STYLE = env.str("OBJECT_STORAGE_ADDRESSING_STYLE", default="")
# none, cloudflare, fastly or webhook; the API base URL is overridable (tests, proxies).
BEACON_CDN_PURGE = env.str("CDN_PURGE", default="none")
BEACON_CDN_PURGE_API_URL = env.str("CDN_PURGE_API_URL", default="")
BEACON_CDN_PURGE_TOKEN = env.str("CDN_PURGE_TOKEN", default="")
BEACON_CDN_PURGE_ZONE = env.str("CDN_PURGE_ZONE", default="")
BEACON_CDN_PURGE_WEBHOOK_URL = env.str("CDN_PURGE_WEBHOOK_URL", default="")
# The URL visitors reach the page at through the CDN; empty: the page's URL setting.
BEACON_CDN_PURGE_BASE_URL = env.str("CDN_PURGE_BASE_URL", default="")

# Health checks (components/checks/).
# Private, loopback and reserved targets are refused unless allowed (internal services).
BEACON_CHECKS_ALLOW_PRIVATE = env.bool("CHECKS_ALLOW_PRIVATE", default=False)
BEACON_CHECKS_BATCH_SIZE = env.int("CHECKS_BATCH_SIZE", default=100)
# How often beat hands out due checks (also how far ahead: workers wait for each slot).
BEACON_CHECKS_DISPATCH_SECONDS = env.float("CHECKS_DISPATCH_SECONDS", default=2.0)
# Extra CA certificates to trust (a PEM file), for internal PKI: TLS certificate checks
# accept chains that end in them as well as in the system's CAs.
BEACON_CHECKS_CA_BUNDLE = env.str("CHECKS_CA_BUNDLE", default="")
BEACON_CHECK_RESULT_RETENTION_DAYS = env.int("CHECK_RESULT_RETENTION_DAYS", default=14)
# Staff hear of automatic changes by email and, when set, at this Slack-compatible webhook.
BEACON_STAFF_WEBHOOK_URL = env.str("STAFF_WEBHOOK_URL", default="")

# Subscriber notifications (incidents/notify/).
BEACON_NOTIFY_EMAIL_BATCH_SIZE = env.int("NOTIFY_EMAIL_BATCH_SIZE", default=500)
BEACON_NOTIFY_WEBHOOK_BATCH_SIZE = env.int("NOTIFY_WEBHOOK_BATCH_SIZE", default=10)
# A batch owns its rows this long (renewed every third of it while it works); then the
# sweeper hands them out again, which is how a batch whose worker was killed gets finished.
BEACON_NOTIFY_LEASE_SECONDS = env.int("NOTIFY_LEASE_SECONDS", default=30)
# Rows handed out this long ago and still unclaimed are handed out again although the notify
# queue is not empty (an empty queue means a lost doorbell after 15 s). Long enough that a big
# fan-out still waiting in the queue is left be.
BEACON_NOTIFY_REDISPATCH_SECONDS = env.int("NOTIFY_REDISPATCH_SECONDS", default=300)
BEACON_NOTIFY_SWEEP_SECONDS = env.float("NOTIFY_SWEEP_SECONDS", default=10.0)
# Temporary failures are retried after 1, 2, 4 … minutes (at most an hour apart) for a day.
BEACON_NOTIFY_RETRY_BASE_SECONDS = env.int("NOTIFY_RETRY_BASE_SECONDS", default=60)
BEACON_NOTIFY_GIVE_UP_HOURS = env.int("NOTIFY_GIVE_UP_HOURS", default=24)
BEACON_NOTIFY_WEBHOOK_TIMEOUT_SECONDS = env.float("NOTIFY_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# Webhooks to private, loopback and reserved addresses are refused unless allowed.
BEACON_WEBHOOKS_ALLOW_PRIVATE = env.bool("WEBHOOKS_ALLOW_PRIVATE", default=False)
# Browser push: who runs this sender, for the push services (mailto: or https: URL; by
# default mailto: DEFAULT_FROM_EMAIL). Push endpoints obey WEBHOOKS_ALLOW_PRIVATE too.
BEACON_PUSH_VAPID_SUBJECT = env.str("PUSH_VAPID_SUBJECT", default="")
# The VAPID private key (PEM, P-256), for deployments whose processes share no var dir
# (Kubernetes); without it the key is made once in var/vapid_private_key.pem.
BEACON_PUSH_VAPID_PRIVATE_KEY = env.str("PUSH_VAPID_PRIVATE_KEY", default="", multiline=True)
# How long a push service keeps a notification for a browser that is offline.
BEACON_PUSH_TTL_SECONDS = env.int("PUSH_TTL_SECONDS", default=24 * 3600)
BEACON_MAINTENANCE_REMINDER_MINUTES = env.int("MAINTENANCE_REMINDER_MINUTES", default=60)
# Confirmation links in subscription emails expire after this many hours.
BEACON_SUBSCRIBE_CONFIRM_HOURS = env.int("SUBSCRIBE_CONFIRM_HOURS", default=48)
# The public subscribe form: attempts in any 60 minutes from one IP address, and for one
# address. Past them nothing is sent, and the answer is the same.
BEACON_SUBSCRIBE_LIMIT_PER_IP = env.int("SUBSCRIBE_LIMIT_PER_IP", default=10)
BEACON_SUBSCRIBE_LIMIT_PER_ADDRESS = env.int("SUBSCRIBE_LIMIT_PER_ADDRESS", default=3)
# Visitor problem reports a client address may send per minute (docs/reports.md).
BEACON_REPORTS_LIMIT_PER_IP = env.int("REPORTS_LIMIT_PER_IP", default=20)
# Surge detection of visitor reports (components/reports/surge.py, docs/reports.md): reports
# in the last WINDOW minutes against the same hour of the past WEEKS weeks and the hour before.
BEACON_REPORT_SURGE_WINDOW_MINUTES = env.int("REPORT_SURGE_WINDOW_MINUTES", default=5)
BEACON_REPORT_SURGE_WEEKS = env.int("REPORT_SURGE_WEEKS", default=4)
BEACON_REPORT_SURGE_FLOOR = env.int("REPORT_SURGE_FLOOR", default=10)
BEACON_REPORT_SURGE_FACTOR = env.float("REPORT_SURGE_FACTOR", default=4.0)
BEACON_REPORT_SURGE_END_MINUTES = env.int("REPORT_SURGE_END_MINUTES", default=15)
# Hard bounces (incidents/notify/bounces.py): the token every provider's webhook must give
# at /webhooks/bounces/<provider>/ (off without it), and Mailgun's signing key.
BEACON_BOUNCE_WEBHOOK_TOKEN = env.str("BOUNCE_WEBHOOK_TOKEN", default="")
BEACON_MAILGUN_WEBHOOK_SIGNING_KEY = env.str("MAILGUN_WEBHOOK_SIGNING_KEY", default="")

# Management API v1: requests per minute per key (Statuspage allows 1/s, in bursts).
BEACON_API_RATE_LIMIT_PER_MINUTE = env.int("API_RATE_LIMIT_PER_MINUTE", default=60)

# Every record is masked (secret URLs) and tagged with its request's id where it is made:
# statuspage/lib/request_log.py, installed by the statuspage app.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"beacon": {"()": "statuspage.lib.request_log.Formatter"}},
    "filters": {
        "quiet_during_outage": {"()": "statuspage.lib.outage.QuietDuringOutage"},
        "not_found_is_not_news": {"()": "statuspage.lib.request_log.NotFoundIsNotNews"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "beacon"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # A request that fails because PostgreSQL is away is a 503, not a traceback each time;
        # a 404 is in the access log already.
        "django.request": {"filters": ["quiet_during_outage", "not_found_is_not_news"]},
    },
}

# The audit trail (statuspage/audit.py): events older than this many days are pruned daily;
# 0 keeps them for ever.
BEACON_AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=365)

# Prometheus metrics (/metrics, docs/metrics.md): a scrape is let in with this bearer token,
# or without a token from these addresses or networks (CIDR).
BEACON_METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
BEACON_METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"])

"""StateSync settings: everything that varies comes from the environment.

With no variables set StateSync runs on the embedded default: SQLite files in
DATA_DIR and an embedded redis-server (see embedded_redis.py). DATABASE_URL,
STATE_DATABASE_URL and REDIS_URL switch to PostgreSQL and an external Redis.

Importing settings has no side effect: it writes no file, makes no folder and
starts no process. The embedded redis-server starts at the first connection that
needs it, DATA_DIR appears with the first SQLite file or secret written into it.
"""

from pathlib import Path

from channels_redis.core import RedisChannelLayer
from django.core.exceptions import ImproperlyConfigured

from . import embedded_redis
from .env import (
    database_identity,
    env_bool,
    env_int,
    env_list,
    env_proxy_header,
    env_secret,
    env_str,
    kept_secret,
    parse_database_url,
    sqlite_database,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "data"))).resolve()

DEBUG = env_bool("DEBUG", False)
# The embedded default keeps a generated key in the data folder, so sessions
# survive restarts without anyone having to invent one.
SECRET_KEY = env_secret("SECRET_KEY") or kept_secret(DATA_DIR / "secret_key")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# HTTPS. With DEBUG false the cookies are Secure and HSTS is on (sent only over
# HTTPS, so plain http never sees it) by default; browsers keep Secure cookies
# on http://localhost and 127.0.0.1, so ./bin/demo and the tests still log in.
# Only the redirect to HTTPS stays off unless asked for: on the demo's plain
# http it would lead nowhere. `manage.py check --deploy` is clean once a
# deployment sets SECURE_SSL_REDIRECT and the two HSTS switches (tests/test_hardening.py).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Behind a proxy that terminates TLS, e.g. "X-Forwarded-Proto: https"; only
# set it if the proxy always sets (or strips) that header itself.
SECURE_PROXY_SSL_HEADER = env_proxy_header("SECURE_PROXY_SSL_HEADER")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 3600, minimum=0)
# Both bind more than this site (every subdomain; browsers' built-in lists), so they are opt-in.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)

INSTALLED_APPS = [
    "daphne",
    "statesync.apps.AdminConfig",  # django.contrib.admin, whose change lists answer bad filters with a 400
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_rq",
    "channels",
    "guardian",
    "resync",
    "history",
    "alerts",
    "notify",
    "loads",
    "tool",
    "verification",
    "selective",
    "yearswitch",
    "schedules",
    "dashboard",
    "statecopy",
    "audit",
    "worker",
    "live",
]

MIDDLEWARE = [
    # First: a NUL byte never reaches the session, the token lookup or a view.
    "statesync.middleware.RefuseNulBytes",
    "django.middleware.security.SecurityMiddleware",
    # daphne serves no static files itself; WhiteNoise does, in every setup.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication, so a 403 names its user (DRF's token user too: it sets request.user).
    "statesync.middleware.LogRefusals",
    # After authentication: the audit trail names who changed what, and through which door.
    "audit.doors.Door",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "statesync.urls"
ASGI_APPLICATION = "statesync.asgi.application"
WSGI_APPLICATION = "statesync.wsgi.application"

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
                "alerts.context.unread",
            ],
        },
    },
]

# Two databases: `default` is the district side (plus StateSync's own tables),
# `state` is the state-level copy. A resync moves rows from one to the other.
_district_url = env_secret("DATABASE_URL")
_state_url = env_secret("STATE_DATABASE_URL")
if bool(_district_url) != bool(_state_url):
    raise ImproperlyConfigured("Set both DATABASE_URL and STATE_DATABASE_URL, or neither.")
if _district_url:
    DATABASES = {
        "default": parse_database_url("DATABASE_URL", _district_url),
        "state": parse_database_url("STATE_DATABASE_URL", _state_url),
    }
else:
    DATABASES = {
        "default": sqlite_database(str(DATA_DIR / "district.sqlite3")),
        "state": sqlite_database(str(DATA_DIR / "state.sqlite3")),
    }
if database_identity(DATABASES["default"]) == database_identity(DATABASES["state"]):
    raise ImproperlyConfigured(
        "DATABASE_URL and STATE_DATABASE_URL name the same database: the district and "
        "state sides must be separate databases."
    )
DATABASE_ROUTERS = ["statesync.routers.StateRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_secret("REDIS_URL")
# Unset: the embedded redis-server on DATA_DIR's socket, started by the first
# connection that needs it (RQ's queue class, the channel layer's connection class).
EMBEDDED_REDIS = not REDIS_URL
if EMBEDDED_REDIS:
    REDIS_URL = embedded_redis.url(DATA_DIR)

RQ_QUEUE = env_str("RQ_QUEUE", "resync")
RQ_QUEUES = {
    RQ_QUEUE: {
        "URL": REDIS_URL,
        "DEFAULT_TIMEOUT": env_int("RQ_JOB_TIMEOUT", 6 * 3600, minimum=60),
        **({"QUEUE_CLASS": "statesync.embedded_queue.EmbeddedRedisQueue"} if EMBEDDED_REDIS else {}),
    },
}
# Resync workers run at this niceness (0-19) so the admin and the API keep the
# CPU first when a big resync shares their host.
RESYNC_WORKER_NICE = env_int("RESYNC_WORKER_NICE", 10, minimum=0, maximum=19)
# Every worker checks this often (seconds), idle or between jobs, for what needs
# recovering: dead workers' steps, lost jobs, requests nothing moves.
RESYNC_RECOVER_EVERY = env_int("RESYNC_RECOVER_EVERY", 15, minimum=1, maximum=600)
# A step or verification queued this long (seconds) whose RQ job is gone is
# enqueued again; the wait lets an enqueue whose transaction just committed land.
RESYNC_LOST_AFTER = env_int("RESYNC_LOST_AFTER", 30, minimum=1)
# Issue 15: may a district administrator schedule their own district's resyncs? The state's call.
SCHEDULES_FOR_DISTRICTS = env_bool("SCHEDULES_FOR_DISTRICTS", False)
# Enqueue only once the transaction that created the request commits.
RQ = {"COMMIT_MODE": "on_db_commit", "WORKER_CLASS": "worker.worker.ResyncWorker"}

# The live websocket's layer. channels-redis waits for a socket's next message with a
# BZPOPMIN that blocks RedisChannelLayer.brpop_timeout (5 s) on the server; redis-py's
# default socket_timeout is also 5 s, so the client gave up reading at the very moment an
# idle socket's "nothing yet" was due, raised TimeoutError, and every idle websocket died
# with 1011 after ~5 s (pushes sent while its page reconnected were lost). The read timeout
# must outlast the block; a few seconds more still notices a dead server. The same host
# dict serves TCP (redis://, with keepalive, redis-py's default) and the embedded server's
# unix:// socket. A pooled connection idle longer than the health check is PINGed before
# reuse, so one cut by a Redis restart is replaced instead of failing the next push.
# The embedded server's socket is given as a path and a connection class (which starts
# the server first): redis-py's URL parsing would replace any class given with a URL.
_LAYER_HOST = {
    **(
        {
            "path": str(embedded_redis.socket_path(DATA_DIR)),
            "connection_class": embedded_redis.StartingConnection,
        }
        if EMBEDDED_REDIS
        else {"address": REDIS_URL}
    ),
    "socket_timeout": RedisChannelLayer.brpop_timeout + 10,
    "socket_connect_timeout": 5,
    "health_check_interval": 30,
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [_LAYER_HOST], "prefix": env_str("CHANNELS_PREFIX", "statesync")},
    }
}
# How often an open websocket re-checks its user's rights and session (and re-joins
# its groups, which Redis may have lost: FLUSHDB, a restart without persistence, or
# channels-redis' group_expiry). Rights changes and logouts also re-check at once.
LIVE_RECHECK_SECONDS = env_int("LIVE_RECHECK_SECONDS", 30, minimum=1)

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "StateSync API",
    "DESCRIPTION": "Resync district SIS data to the state.",
    "VERSION": "1",
    # Request bodies get their own components, so read-only fields are never asked for.
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_INCLUDE_SCHEMA": False,
    # The doc pages load Swagger UI and Redoc from our own static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "StepStatusEnum": "history.models.StepStatus",
        "RequestStatusEnum": "resync.models.ResyncRequest.Status",
        "VerificationStatusEnum": "verification.models.VerificationRun.Status",
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "America/Chicago")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# collectstatic makes it; a server started without (tests, a quick start) serves from
# the apps' folders too and still has its scripts and styles (WhiteNoise warns that
# the folder is missing: the tests silence that warning, production should hear it).
STATIC_ROOT = DATA_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "admin:login"

# How many records a resync step reads and validates at a time (it writes them in batches).
RESYNC_CHUNK = env_int("RESYNC_CHUNK", 2000, minimum=1)
# A request of a district with fewer records than this runs whole in one RQ job, its
# steps one after another (runner.lifecycle.run_request) on RESYNC_JOB_LANES threads:
# a step of its own each cost a job's round trip and a layer's wake-up, which took
# most of a small district's time. 0 runs every request a job per step. Larger
# districts keep a job per step, so several workers share one district's layers.
# Two million: on PostgreSQL a step's records are judged in the database
# (runner.bulk), so a worker's lanes keep two database cores busy with one district
# (a million records ran at 109% of the plain-SQL floor in one job, 72% a job per
# step with one worker; issue 16).
RESYNC_ONE_JOB_RECORDS = env_int("RESYNC_ONE_JOB_RECORDS", 2_000_000, minimum=0)
# A one-job request runs each layer's steps on this many threads of its worker
# (runner.lanes): one step's commit overlaps the next one's judging. PostgreSQL
# only: SQLite takes one writer at a time, so there it is 1.
_postgres = all(db["ENGINE"] == "statesync.postgresql" for db in DATABASES.values())
RESYNC_JOB_LANES = env_int("RESYNC_JOB_LANES", 2 if _postgres else 1, minimum=1, maximum=8)
if RESYNC_JOB_LANES > 1 and not _postgres:
    raise ImproperlyConfigured(
        f"RESYNC_JOB_LANES={RESYNC_JOB_LANES} needs PostgreSQL on both sides: SQLite takes one writer at a time."
    )
# A one-job request runs its steps together in batches of up to this many records
# (runner.batch): one read, one judgement pass and one state transaction for them all,
# each step keeping its own counts, history row and Error Log. Consecutive layers that
# fit go in one batch (a small district's whole request); past that, a layer's small
# steps (fewer than RESYNC_CHUNK records each). 0 runs every step on its own.
RESYNC_BATCH_RECORDS = env_int("RESYNC_BATCH_RECORDS", 20_000, minimum=0)
# How a step writes the state store: "sql" stages each batch (COPY on
# PostgreSQL, executemany on SQLite) and upserts it in one statement; "orm"
# uses bulk_create, slower on both (2.4x on SQLite), kept as the reference the
# tests hold the sql path to.
RESYNC_WRITE = env_str("RESYNC_WRITE", "sql")
if RESYNC_WRITE not in ("sql", "orm"):
    raise ImproperlyConfigured(f"RESYNC_WRITE={RESYNC_WRITE!r} is not one of sql, orm.")
# On PostgreSQL (both sides) with RESYNC_WRITE=sql, a step's records are judged where
# they land, in the state's database (runner.bulk); false judges every record in the
# worker (runner.engine and runner.batch), as on SQLite: same results, more worker CPU.
RESYNC_BULK = env_bool("RESYNC_BULK", True)

# Files uploaded in the admin for a load (loads.Upload): the web process writes them and
# a worker reads them, so in production the two must share this folder.
UPLOAD_DIR = Path(env_str("UPLOAD_DIR", str(DATA_DIR / "uploads"))).resolve()

# Notifications (notify): mail over SMTP when EMAIL_HOST is set; else each mail is a
# file under DATA_DIR/mail, so a newcomer reads what would have been sent.
EMAIL_HOST = env_str("EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1, maximum=65535)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = DATA_DIR / "mail"
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "StateSync <statesync@localhost>")
# What mails and webhook bodies prefix to a page's path: the address users reach the site at.
SITE_URL = env_str("SITE_URL", "http://localhost:8000")
# Seconds before each retry of a failed webhook POST (RQ's Retry; a worker started
# with --with-scheduler runs them). Its length is the number of retries.
NOTIFY_RETRY_INTERVALS = [10, 60, 300, 1800]
# Webhooks POST to public addresses only (SSRF: a district administrator chooses the
# URL): true lets them reach loopback and private networks, for a receiver inside one.
WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

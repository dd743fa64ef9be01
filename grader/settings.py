"""Settings for markdesk, read from the environment (django-environ).

With nothing set, markdesk runs on an embedded default for a single machine: SQLite, a Celery broker
on the local filesystem and task results in the database, all under ``MARKDESK_VAR_DIR``, with a secret
key it makes once and keeps there. Production sets ``DATABASE_URL`` (PostgreSQL), ``CELERY_BROKER_URL``
(Redis), ``SECRET_KEY`` and ``DEBUG=off``, and refuses to start without the key.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
env_file = BASE_DIR / ".env"
if env_file.exists():
    env.read_env(env_file)

DEBUG = env.bool("DEBUG", default=False)
VAR_DIR = Path(env.str("MARKDESK_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()


def _embedded_secret_key(var_dir: Path) -> str:
    """The embedded default's own key: made once, kept under ``var/`` (owner-only), so commands run
    as the README writes them and sessions survive a restart without anyone choosing a key."""
    path = var_dir / "secret_key"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    # A server installation (its own database) must be given a key; the embedded default makes one.
    if env.str("DATABASE_URL", default=""):
        if not DEBUG:
            raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
        SECRET_KEY = "markdesk-insecure-development-key"
    else:
        SECRET_KEY = _embedded_secret_key(VAR_DIR)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "django_celery_results",
    "grader",
    "grader.scans",
    "grader.reading",
    "grader.grading",
    "grader.rubrics",
    "grader.outputs",
    "grader.learning",
    "grader.recovery",
    "grader.api",
    "annotations",
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "grader.uploads.UploadLimitMiddleware",  # before CSRF's check, which would read a whole upload first
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last: it turns a locked-out login into the lockout page
]

ROOT_URLCONF = "grader.urls"
WSGI_APPLICATION = "grader.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'markdesk.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and a Celery worker write at the same time: WAL lets readers go on during a
    # write, and IMMEDIATE transactions wait for the lock instead of failing on upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not :memory:, so that a real worker process started by a test sees the test data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "grader.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "exam_list"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login throttling (django-axes, failed attempts kept in the database so every process shares them):
# after AXES_FAILURE_LIMIT failed logins for one username, or from one address, logins for that
# username, or from that address, are refused for AXES_COOLOFF_MINUTES after the last failure (status
# 429). A success does not clear the count: with one account of their own, an attacker could otherwise
# clear it between guesses. Administrators unlock early in /admin/ or with manage.py axes_reset_username.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
# A school whose teachers all reach markdesk from one public address may keep only "username".
AXES_LOCKOUT_PARAMETERS = env.list("AXES_LOCKOUT_PARAMETERS", default=["username", "ip_address"])
AXES_LOCKOUT_CALLABLE = "grader.logins.login_locked_out"
AXES_CLIENT_IP_CALLABLE = "grader.logins.client_address"
# Reverse proxies in front of markdesk that append the client's address to X-Forwarded-For (0: none;
# the address is then REMOTE_ADDR). Only these rightmost entries are trusted: a client can forge the rest.
TRUSTED_PROXIES = env.int("TRUSTED_PROXIES", default=0)

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every start when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Page images are students' work: they are served only through views that check permissions,
# never from a public MEDIA_URL.
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))

# Uploads: a file above this size is refused while it arrives (grader/uploads.py), and nothing is stored.
MAX_UPLOAD_MB = env.int("MAX_UPLOAD_MB", default=200)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = 50
# A scan file with more pages is refused whole: a class set is a few hundred pages, and every page
# is rendered, stored and read.
MAX_PAGES_PER_UPLOAD = env.int("MAX_PAGES_PER_UPLOAD", default=2000)
# Roster and answer-key imports: a file with data beyond these is refused whole (nothing imported).
IMPORT_MAX_ROWS = env.int("IMPORT_MAX_ROWS", default=10_000)
IMPORT_MAX_COLUMNS = env.int("IMPORT_MAX_COLUMNS", default=100)
# Pillow refuses images above this many pixels (decompression bombs); a 600 dpi A3 scan is ~70 MP.
MAX_IMAGE_PIXELS = env.int("MAX_IMAGE_PIXELS", default=90_000_000)
# The canonical raster of every page in the app; boxes are stored in pixels at this resolution.
PAGE_DPI = 150
# Duplex scanners produce empty back pages: a page with less dark ink than this fraction is one.
BLANK_PAGE_INK_FRACTION = env.float("BLANK_PAGE_INK_FRACTION", default=0.002)
DROP_BLANK_PAGES_DEFAULT = env.bool("DROP_BLANK_PAGES_DEFAULT", default=True)
# A scanned page sharing fewer printed features than this with every template page looks like another exam.
TEMPLATE_MATCH_MIN = env.int("TEMPLATE_MATCH_MIN", default=15)

# Celery. The default broker keeps messages in files so that nothing but Python is needed.
#
# Work survives a killed worker, a dropped database connection and a lost broker (README "Production"):
# - every task is acknowledged only once it ends (acks late) and is given back to the broker when its
#   worker process dies (reject on worker lost): all of them may run twice (they are idempotent, or
#   guarded by their job's state and heartbeat, see grader/recovery/jobs.py);
# - a message whose worker vanished altogether (kill -9, a lost machine) is handed out again by the broker:
#   the filesystem broker at once, Redis after CELERY_VISIBILITY_TIMEOUT seconds, RabbitMQ when the
#   consumer's connection closes (or after its server-side consumer_timeout, which must exceed the
#   longest task: RabbitMQ's default of 30 minutes does);
# - the database is the source of truth: every WORK_RECOVER_EVERY_S seconds Celery beat runs the
#   recovery sweep (grader/recovery/services.py), which queues again, once, any work that made no
#   progress for WORK_STALLED_MINUTES, so even messages the broker lost are done.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
# Seconds a task may take before Redis hands its message to another worker: just above the longest
# task (exporting or re-reading a large exam; fine-tuning heartbeats, so a second copy returns at once).
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=1800)
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://", "sentinel://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
        # Unacknowledged messages of a dead worker are looked for every 10 s (kombu's default scans
        # every 100 s), so they come back within seconds of the visibility timeout.
        "unacked_restore_interval": 10,
        "unacked_restore_throttle": 1,
        # A broker that stops answering is noticed, and the connection made again, within seconds.
        "socket_timeout": 30,
        "socket_connect_timeout": 10,
        "socket_keepalive": True,
        "retry_on_timeout": True,
        "health_check_interval": 25,
    }
elif CELERY_BROKER_URL.startswith(("amqp://", "amqps://", "pyamqp://")):
    # Published messages are confirmed by RabbitMQ, so a task queued is a task stored. Its redelivery
    # bound is the server's consumer_timeout (rabbitmq.conf), not a client option.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="django-db")
CELERY_RESULT_EXTENDED = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "grader.scans.tasks.*": {"queue": "default"},
    "grader.reading.tasks.script_read_task": {"queue": "ocr"},
    "grader.reading.tasks.script_box_read_task": {"queue": "ocr"},
    "grader.reading.tasks.scripts_read_vlm_task": {"queue": "vlm"},
    "annotations.tasks.vlm_box_suggestions_compute_task": {"queue": "vlm"},
    "grader.rubrics.tasks.*": {"queue": "vlm"},
    "grader.reading.tasks.*": {"queue": "default"},
    "grader.outputs.tasks.*": {"queue": "default"},
    "grader.recovery.tasks.*": {"queue": "default"},
    # Fine-tuning runs on the CPU workers, beside reading.
    "grader.learning.tasks.*": {"queue": "ocr"},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Work with no progress (no heartbeat) for this long is shown as stalled and queued again by the sweep;
# keep it above the longest single step of a job (one script's PDF or reading, one training epoch).
WORK_STALLED_MINUTES = env.float("WORK_STALLED_MINUTES", default=10)
WORK_RECOVER_EVERY_S = env.float("WORK_RECOVER_EVERY_S", default=60)
# Work queued again this many times without progress in between is given up (and logged): it is what
# stops the worker (a page that exhausts its memory), not a lost message.
WORK_REQUEUE_MAX = env.int("WORK_REQUEUE_MAX", default=3)
CELERY_BEAT_SCHEDULE = {
    "work-recover": {"task": "grader.recovery.tasks.work_recover_task", "schedule": WORK_RECOVER_EVERY_S,
                     # A sweep not run in time is skipped: the next one does the same work.
                     "options": {"expires": WORK_RECOVER_EVERY_S}},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Without an SMTP server, each email is written as a file under var/mail/ (an .eml any mail reader opens).
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="filemail://")
vars().update(EMAIL_CONFIG)
if EMAIL_CONFIG["EMAIL_BACKEND"].endswith(".filebased.EmailBackend"):
    EMAIL_BACKEND = "grader.mailfiles.EmlFileBackend"
    EMAIL_FILE_PATH = EMAIL_CONFIG.get("EMAIL_FILE_PATH") or str(VAR_DIR / "mail")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="markdesk <markdesk@localhost>")

# Readings with a confidence under this are flagged for the teacher to check.
READ_LOW_CONFIDENCE = env.float("READ_LOW_CONFIDENCE", default=0.5)

# Vision-language model for GPU workers (used by the recognition pipeline).
VLM_MODEL_PATH = env.str("VLM_MODEL_PATH", default="")
VLM_ADAPTER_PATH = env.str("VLM_ADAPTER_PATH", default="")
# Pages the VLM generates for at once, and scripts a `vlm` task takes: a GPU is fast only on full
# batches, so a task gathers the pages of several scripts (bench/vlm.py prints pages/s by batch size).
VLM_BATCH_SIZE = env.int("VLM_BATCH_SIZE", default=8)
VLM_SCRIPTS_PER_TASK = env.int("VLM_SCRIPTS_PER_TASK", default=16)
# How the `vlm` worker serves the model: "transformers" (default) or "vllm" (optional package, CUDA only);
# static KV cache and torch.compile apply to transformers (see ml.recognition.vlm.VlmConfig).
VLM_BACKEND = env.str("VLM_BACKEND", default="transformers")
if VLM_BACKEND not in ("transformers", "vllm"):
    raise ImproperlyConfigured(f"VLM_BACKEND must be transformers or vllm, not {VLM_BACKEND!r}")
VLM_STATIC_CACHE = env.bool("VLM_STATIC_CACHE", default=False)
VLM_COMPILE = env.bool("VLM_COMPILE", default=False)
# The rubric model (python -m ml.train_rubric's output folder) that suggests dimension scores and a draft
# of the feedback on rubric questions, on the `vlm` queue; its base Qwen2.5-VL when it has moved since
# training. Empty: rubric questions are graded without suggestions.
RUBRIC_MODEL_PATH = env.str("RUBRIC_MODEL_PATH", default="")
RUBRIC_BASE_MODEL_PATH = env.str("RUBRIC_BASE_MODEL_PATH", default="")

# A TLS-terminating proxy in front of markdesk says which scheme the browser used in a header it sets,
# e.g. SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto,https. The header is trusted only when configured:
# without a proxy that sets it (overwriting what clients send), anyone could claim HTTPS.
_proxy_ssl_header = env.list("SECURE_PROXY_SSL_HEADER", default=[])
if _proxy_ssl_header:
    if len(_proxy_ssl_header) != 2:
        raise ImproperlyConfigured("SECURE_PROXY_SSL_HEADER is a header and its value, e.g. X-Forwarded-Proto,https.")
    _header, _value = (part.strip() for part in _proxy_ssl_header)
    # Django reads request headers as WSGI names: X-Forwarded-Proto is HTTP_X_FORWARDED_PROTO.
    _header = _header if _header.startswith("HTTP_") else "HTTP_" + _header.upper().replace("-", "_")
    SECURE_PROXY_SSL_HEADER = (_header, _value)

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    # Browsers that reached markdesk over HTTPS keep to HTTPS for a year (sent over HTTPS only).
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
    # Plain HTTP is sent to HTTPS where markdesk can tell them apart: behind a proxy, only by its header.
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=bool(_proxy_ssl_header))
    # The container's healthcheck asks http://127.0.0.1:8000/healthz directly, past the proxy.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    # Preloading asks browsers to hard-code HTTPS for the whole domain, which is hard to undo: a choice
    # for the domain's owner (SECURE_HSTS_PRELOAD=1), not a default.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {name: {"level": "WARNING"} for name in ("django.db.backends", "weasyprint", "fontTools", "pikepdf")},
}

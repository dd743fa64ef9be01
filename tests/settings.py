"""Settings for the test suite: the app's own settings with test-only defaults.

``DATABASE_URL`` and ``CELERY_BROKER_URL`` from the environment still win, so the same suite runs
against PostgreSQL and Redis when they are given.
"""

import os
from pathlib import Path

os.environ.setdefault("SECRET_KEY", "markdesk-tests")
os.environ.setdefault("MARKDESK_VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test"))

from grader.settings import *  # noqa: E402,F403

# Most tests run tasks in-process; tests marked `services` start a real worker and turn this off.
CELERY_TASK_ALWAYS_EAGER = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405

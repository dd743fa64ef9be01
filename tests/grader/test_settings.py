"""Settings come from the environment and refuse to start production without a secret key."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from django.conf import settings

_PRINT_SETTINGS = (
    "import json, grader.settings as s; "
    "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'], 'name': s.DATABASES['default']['NAME'], "
    "'broker': s.CELERY_BROKER_URL, 'debug': s.DEBUG, 'media': str(s.MEDIA_ROOT), 'max_mb': s.MAX_UPLOAD_MB, "
    "'email': [s.EMAIL_BACKEND.rsplit('.', 2)[-2], getattr(s, 'EMAIL_FILE_PATH', None) or s.EMAIL_HOST], "
    "'logins': [s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME.total_seconds(), s.AXES_LOCKOUT_PARAMETERS, s.TRUSTED_PROXIES], "
    "'imports': [s.IMPORT_MAX_ROWS, s.IMPORT_MAX_COLUMNS]}))"
)


def _settings_in_subprocess(**environment: str) -> subprocess.CompletedProcess:
    base = {key: value for key, value in os.environ.items() if key not in ("SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "DEBUG")}
    return subprocess.run(
        [sys.executable, "-c", _PRINT_SETTINGS],
        env={**base, **environment},
        capture_output=True,
        text=True,
        cwd=settings.BASE_DIR,
        timeout=60,
    )


def test_production_settings_refuse_to_load_without_a_secret_key():
    result = _settings_in_subprocess(DEBUG="off")

    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off." in result.stderr


def test_production_settings_take_the_database_broker_and_limits_from_the_environment(tmp_path):
    result = _settings_in_subprocess(
        DEBUG="off",
        SECRET_KEY="x" * 50,
        DATABASE_URL="postgres://markdesk:pw@db.internal:5432/markdesk",
        CELERY_BROKER_URL="redis://redis.internal:6379/0",
        MEDIA_ROOT=str(tmp_path / "media"),
        MAX_UPLOAD_MB="50",
        STATIC_ROOT=str(tmp_path / "static"),
        EMAIL_URL="smtp+tls://markdesk:pw@mail.example.org:587",
        AXES_FAILURE_LIMIT="5",
        AXES_COOLOFF_MINUTES="30",
        AXES_LOCKOUT_PARAMETERS="username",
        TRUSTED_PROXIES="1",
        IMPORT_MAX_ROWS="2000",
        IMPORT_MAX_COLUMNS="40",
    )

    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded == {
        "engine": "django.db.backends.postgresql",
        "name": "markdesk",
        "broker": "redis://redis.internal:6379/0",
        "debug": False,
        "media": str(tmp_path / "media"),
        "max_mb": 50,
        "email": ["smtp", "mail.example.org"],
        "logins": [5, 1800.0, ["username"], 1],
        "imports": [2000, 40],
    }


def test_the_embedded_default_needs_no_server(tmp_path):
    result = _settings_in_subprocess(DEBUG="on", MARKDESK_VAR_DIR=str(tmp_path), STATIC_ROOT=str(tmp_path / "static"))

    loaded = json.loads(result.stdout)
    assert loaded["engine"] == "django.db.backends.sqlite3"
    assert loaded["name"] == str(tmp_path / "markdesk.sqlite3")
    assert loaded["broker"] == "filesystem://"
    assert (tmp_path / "broker" / "queue").is_dir()
    assert loaded["email"] == ["filebased", str(tmp_path / "mail")]  # emails become .eml files, no SMTP server
    assert loaded["logins"] == [10, 900.0, ["username", "ip_address"], 0]
    assert loaded["imports"] == [10_000, 100]

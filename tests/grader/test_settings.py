"""Settings come from the environment, refuse to start production without a secret key, and pass Django's
deployment check with the docker settings."""

from __future__ import annotations

import json
import os
import secrets
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


def _python(*args: str, **environment: str) -> subprocess.CompletedProcess:
    base = {key: value for key, value in os.environ.items() if key not in ("SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "DEBUG")}
    return subprocess.run(
        [sys.executable, *args],
        env={**base, **environment},
        capture_output=True,
        text=True,
        cwd=settings.BASE_DIR,
        timeout=60,
    )


def _settings_in_subprocess(*, script: str = _PRINT_SETTINGS, **environment: str) -> subprocess.CompletedProcess:
    return _python("-c", script, **environment)


def test_production_settings_refuse_to_load_without_a_secret_key():
    result = _settings_in_subprocess(DEBUG="off", DATABASE_URL="postgres://markdesk:pw@db.internal:5432/markdesk")

    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off." in result.stderr


def test_the_embedded_default_makes_its_own_key_once_and_keeps_it_private(tmp_path):
    script = "from django.conf import settings; import django; django.setup(); print(settings.SECRET_KEY)"
    first = _settings_in_subprocess(script=script, DEBUG="off", MARKDESK_VAR_DIR=str(tmp_path),
                                    DJANGO_SETTINGS_MODULE="grader.settings")
    again = _settings_in_subprocess(script=script, DEBUG="off", MARKDESK_VAR_DIR=str(tmp_path),
                                    DJANGO_SETTINGS_MODULE="grader.settings")

    assert first.returncode == 0, first.stderr
    key = first.stdout.strip().splitlines()[-1]
    assert len(key) >= 50 and again.stdout.strip().splitlines()[-1] == key
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


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
    assert loaded["email"] == ["mailfiles", str(tmp_path / "mail")]  # emails become .eml files, no SMTP server
    assert loaded["logins"] == [10, 900.0, ["username", "ip_address"], 0]
    assert loaded["imports"] == [10_000, 100]


_PRINT_SECURITY = (
    "import json, grader.settings as s; "
    "print(json.dumps({name: getattr(s, name, None) for name in ('SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', "
    "'SECURE_HSTS_PRELOAD', 'SECURE_PROXY_SSL_HEADER', 'SECURE_SSL_REDIRECT', 'SECURE_REDIRECT_EXEMPT')}))"
)


def _security_settings(**environment: str) -> dict:
    result = _settings_in_subprocess(script=_PRINT_SECURITY, **environment)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_sends_hsts_and_trusts_no_proxy_header_unless_one_is_configured(tmp_path):
    production = {"DEBUG": "off", "SECRET_KEY": "x" * 50, "STATIC_ROOT": str(tmp_path / "static")}

    assert _security_settings(**production) == {
        "SECURE_HSTS_SECONDS": 31_536_000, "SECURE_HSTS_INCLUDE_SUBDOMAINS": True, "SECURE_HSTS_PRELOAD": False,
        "SECURE_PROXY_SSL_HEADER": None, "SECURE_SSL_REDIRECT": False, "SECURE_REDIRECT_EXEMPT": ["^healthz$"],
    }
    behind_a_proxy = _security_settings(**production, SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto,https")
    assert behind_a_proxy["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert behind_a_proxy["SECURE_SSL_REDIRECT"] is True
    development = _security_settings(DEBUG="on", STATIC_ROOT=str(tmp_path / "static"))
    assert development["SECURE_HSTS_SECONDS"] is None and development["SECURE_PROXY_SSL_HEADER"] is None


def test_a_proxy_header_without_its_value_is_refused(tmp_path):
    result = _settings_in_subprocess(DEBUG="off", SECRET_KEY="x" * 50, STATIC_ROOT=str(tmp_path / "static"),
                                     SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto")

    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER is a header and its value, e.g. X-Forwarded-Proto,https." in result.stderr


def _docker_environment(tmp_path) -> dict[str, str]:
    """docker/.env.example as compose hands it to the web container: the file, then compose's own values,
    with the placeholder secret replaced as the entrypoint demands."""
    environment = {}
    for line in (settings.BASE_DIR / "docker" / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            environment[name.strip()] = value.strip()
    assert environment["SECRET_KEY"].startswith("CHANGE-ME")
    return {
        **environment,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": "postgres://markdesk:pw@db:5432/markdesk",
        "CELERY_BROKER_URL": "redis://redis:6379/0",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "STATIC_ROOT": str(tmp_path / "static"),  # /app/staticfiles in the image
        "MARKDESK_VAR_DIR": str(tmp_path / "var"),
    }


def test_the_deployment_check_passes_with_the_docker_settings(tmp_path):
    result = _python("manage.py", "check", "--deploy", "--fail-level", "WARNING",
                     **_docker_environment(tmp_path), DJANGO_SETTINGS_MODULE="grader.settings")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_grade_folder_runs_as_the_readme_writes_it_on_a_fresh_embedded_default(tmp_path, demo_folder_for):
    folder = demo_folder_for(students=2, absent=0, seed=3)
    environment = {"MARKDESK_VAR_DIR": str(tmp_path / "var"), "DJANGO_SETTINGS_MODULE": "grader.settings"}
    assert _python("manage.py", "migrate", "--noinput", **environment).returncode == 0
    made = _python("manage.py", "shell", "-c",
                   "from grader.models import User; User.objects.create_superuser('admin', password='x-long-password')",
                   **environment)
    assert made.returncode == 0, made.stderr

    result = _python("manage.py", "grade_folder", str(folder), "--out", str(tmp_path / "out"), **environment)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "results.json").is_file() and "2 scripts" in result.stdout


def test_without_smtp_each_email_is_its_own_eml_file_a_mail_reader_opens(tmp_path):
    import email

    from django.core.mail import EmailMessage

    from grader.mailfiles import EmlFileBackend

    backend = EmlFileBackend(file_path=str(tmp_path))
    message = EmailMessage("Your scored script", "Well done.", to=["ada@students.example.org"])
    message.attach("S1001.pdf", b"%PDF-1.7 test", "application/pdf")

    assert backend.send_messages([message, EmailMessage("Second", "Hi", to=["bo@students.example.org"])]) == 2

    files = sorted(tmp_path.glob("*.eml"))
    assert len(files) == 2 and all(path.stat().st_mode & 0o777 == 0o600 for path in files)
    parsed = [email.message_from_bytes(path.read_bytes()) for path in files]
    first = next(p for p in parsed if p["To"] == "ada@students.example.org")
    assert first["Subject"] == "Your scored script"
    assert [part.get_filename() for part in first.walk() if part.get_filename()] == ["S1001.pdf"]

#!/usr/bin/env bash
# Container entrypoint for every markdesk role.
#   WAIT_FOR_DB=0      skip waiting for the database (default 1)
#   DB_WAIT_TIMEOUT=N  seconds to wait before giving up (default 60)
#   RUN_MIGRATIONS=1   apply migrations before starting (set on web only, so
#                      several workers never race to migrate the same schema)
set -euo pipefail

# docker/.env.example ships a placeholder key; refuse to sign sessions with a
# value published in the repository.
if [[ "${SECRET_KEY:-}" == CHANGE-ME* ]]; then
    echo "entrypoint: SECRET_KEY is still the placeholder from .env.example; set a real one in docker/.env" >&2
    exit 1
fi

if [[ "${WAIT_FOR_DB:-1}" == "1" ]]; then
    # depends_on/healthchecks only exist under compose; other orchestrators
    # (and restarts of a single container) still need this.
    python - <<'PY'
import os
import sys
import time

import django

django.setup()  # settings errors fail fast, outside the retry loop

from django.db import connection
from django.db.utils import OperationalError

deadline = time.monotonic() + float(os.environ.get("DB_WAIT_TIMEOUT", "60"))
while True:
    try:
        connection.ensure_connection()
        break
    except OperationalError as exc:
        if time.monotonic() >= deadline:
            print(f"entrypoint: database still unreachable: {exc}", file=sys.stderr)
            sys.exit(1)
        print("entrypoint: waiting for database...", file=sys.stderr)
        time.sleep(2)
connection.close()
PY
fi

if [[ "${RUN_MIGRATIONS:-0}" == "1" ]]; then
    python manage.py migrate --noinput
fi

exec "$@"

# markdesk: `make run` installs everything and starts the app with a demo exam; `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.markdesk-installed
HOST ?= 127.0.0.1
PORT ?= 8000
# Debian packages: handwriting fonts for the demo scans, chromium for the browser tests, pango for PDFs,
# LibreOffice Calc (headless) to check that exported spreadsheets open.
SYSTEM_PACKAGES := fonts-dkg-handwriting fonts-humor-sans fonts-femkeklaver fonts-breip fonts-dejavu-core \
	libpango-1.0-0 libpangoft2-1.0-0 chromium poppler-utils libreoffice-calc-nogui
# The second test pass runs over real PostgreSQL and Redis connections (CI has both on 127.0.0.1).
SERVICES_DATABASE_URL ?= $(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/test)
SERVICES_BROKER_URL ?= $(or $(CELERY_BROKER_URL),redis://127.0.0.1:6379/0)
# The embedded default: SQLite and a broker in files, everything under var/.
EMBEDDED := env -u DATABASE_URL -u CELERY_BROKER_URL -u CELERY_RESULT_BACKEND

.PHONY: install run demo test test-embedded test-services system-packages clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@$(MAKE) --no-print-directory system-packages
	@touch $(STAMP)

system-packages:
	@if ! command -v dpkg-query >/dev/null; then \
	  echo "Not a Debian system: install these yourself if missing: $(SYSTEM_PACKAGES)"; exit 0; fi; \
	missing=$$(for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=; elif command -v sudo >/dev/null; then sudo=sudo; \
	  else echo "Please install as root: apt-get install $$missing"; exit 1; fi; \
	  echo "Installing system packages:" $$missing; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: install
	$(EMBEDDED) DEBUG=1 $(PY) manage.py migrate --noinput
	$(EMBEDDED) DEBUG=1 $(PY) manage.py demo

# The web app, a Celery worker and Celery beat (which runs the recovery sweep of grader/recovery every
# minute) together; Ctrl+C stops all three. Beat is its own process: a worker with an embedded beat
# (-B) does not stop on SIGTERM.
run: demo
	@echo
	@echo "  markdesk is running at http://$(HOST):$(PORT)/"
	@echo "  Log in as teacher / markdesk (department head: head / markdesk, admin: admin / markdesk)"
	@echo
	@trap 'kill $$worker $$beat 2>/dev/null' EXIT INT TERM; \
	$(EMBEDDED) DEBUG=1 $(VENV)/bin/celery -A grader worker -Q default,ocr,vlm --concurrency 2 -l warning & worker=$$!; \
	$(EMBEDDED) DEBUG=1 $(VENV)/bin/celery -A grader beat -l warning & beat=$$!; \
	$(EMBEDDED) DEBUG=1 $(PY) manage.py runserver $(HOST):$(PORT) --noreload

test: install
	@$(MAKE) --no-print-directory test-embedded
	@$(MAKE) --no-print-directory test-services

test-embedded:
	@echo "== Tests on the embedded default (SQLite, filesystem broker, a real worker) =="
	$(EMBEDDED) $(PY) -m pytest $(PYTEST_ARGS)

test-services:
	@echo "== Tests over PostgreSQL and Redis ($(SERVICES_DATABASE_URL), $(SERVICES_BROKER_URL)) =="
	@if $(PY) -c "import psycopg, redis; psycopg.connect('$(SERVICES_DATABASE_URL)', connect_timeout=3).close(); \
	    redis.Redis.from_url('$(SERVICES_BROKER_URL)', socket_connect_timeout=3).ping()" 2>/dev/null; then \
	  DATABASE_URL='$(SERVICES_DATABASE_URL)' CELERY_BROKER_URL='$(SERVICES_BROKER_URL)' \
	    $(PY) -m pytest tests/grader -m 'not browser' $(PYTEST_ARGS); \
	elif [ "$$CI" = true ]; then \
	  echo "PostgreSQL or Redis is not reachable, and CI requires them."; exit 1; \
	else \
	  echo "Skipped: PostgreSQL or Redis is not reachable here (CI runs this pass)."; \
	fi

clean:
	rm -rf var staticfiles .pytest_cache

"""Speed of the grading screen: a question page for 300 scripts, and score saves from 20 markers at once.

    python bench/grading.py [--scripts 300] [--markers 20] [--saves 15] [--think-ms 1000] [--database-url URL]

Builds an exam with one question answered on every script (no OCR: answers carry a text, a similarity
and a suggested score), then

* renders the question page server-side (in-process test client) and prints median and p95 ms
  (target: under 200 ms for 300 scripts);
* starts gunicorn on 127.0.0.1 (DEBUG off, static files collected) and lets ``--markers`` threads,
  each logged in as its own co-marker, save ``--saves`` scores each over loopback, pausing
  ``--think-ms`` between saves as a teacher does (one score a second is a fast marker), and prints
  the round-trip p50/p95 ms (target: p95 under 50 ms with 20 markers). ``--think-ms 0`` instead
  measures saturation: every marker saving back to back.

SQLite under ``MARKDESK_VAR_DIR`` by default; ``--database-url`` points at PostgreSQL instead (the
production database, where 20 concurrent writers do not queue on one file lock).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_CSRF = "b" * 32  # the same secret in the cookie and the header passes Django's CSRF check


def _environment(var_dir: Path, database_url: str | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="grader.settings",
        DEBUG="0",
        SECRET_KEY="bench-" + "x" * 40,
        MARKDESK_VAR_DIR=str(var_dir),
        STATIC_ROOT=str(var_dir / "static"),
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        LOG_LEVEL="WARNING",
        CELERY_TASK_ALWAYS_EAGER="1",
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scripts", type=int, default=300)
    parser.add_argument("--markers", type=int, default=20)
    parser.add_argument("--saves", type=int, default=15, help="saves per marker")
    parser.add_argument("--think-ms", type=int, default=1000, help="pause between one marker's saves")
    parser.add_argument("--database-url", help="e.g. postgres://postgres@127.0.0.1:5432/markdesk_bench")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="markdesk-bench-grading-"))
    env = _environment(work / "var", args.database_url)
    os.environ.update(env)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    call_command("collectstatic", verbosity=0, interactive=False)

    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    from grader.models import Exam, Question, Script
    from grader.reading.models import Answer

    User = get_user_model()
    owner = User.objects.create_user("owner", password="bench-password-1")
    markers = [User.objects.create_user(f"marker{n}", password="bench-password-1") for n in range(args.markers)]
    exam = Exam.objects.create(title="Bench", owner=owner, pages_per_script=1)
    exam.co_markers.set(markers)
    question = Question.objects.create(exam=exam, label="Q1", answer="carbon dioxide", max_score=Decimal("2"))
    scripts = Script.objects.bulk_create(Script(exam=exam, number=n) for n in range(1, args.scripts + 1))
    texts = ["carbon dioxide", "carbon dioxid", "oxygen", "CO2", "nitrogen", ""]
    answers = Answer.objects.bulk_create(
        Answer(
            script=script,
            question=question,
            text=texts[n % len(texts)],
            blank=texts[n % len(texts)] == "",
            similarity=[1.0, 0.93, 0.2, 1.0, 0.15, 0.0][n % len(texts)],
            suggested_score=Decimal(["2", "2", "0", "2", "0", "0"][n % len(texts)]),
            read_at=django.utils.timezone.now(),
        )
        for n, script in enumerate(scripts)
    )

    page_url = reverse("grading_question", args=[exam.pk, question.pk])
    client = Client()
    client.force_login(owner)
    client.get(page_url)  # warm up templates and caches
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        response = client.get(page_url)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    print(f"question page, {args.scripts} scripts: median {statistics.median(timings):.0f} ms, "
          f"p95 {_percentile(timings, 0.95):.0f} ms ({len(response.content) / 1024:.0f} KiB of HTML)")

    sessions = []
    for marker in markers:
        marker_client = Client()
        marker_client.force_login(marker)
        sessions.append(marker_client.cookies["sessionid"].value)

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "grader.wsgi:application", "-b", f"127.0.0.1:{port}",
         "-w", "3", "-k", "gthread", "--threads", "8", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("gunicorn did not start")
                time.sleep(0.2)
        round_trips: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()

        def mark(index: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            headers = {
                "Cookie": f"sessionid={sessions[index]}; csrftoken={_CSRF}",
                "X-CSRFToken": _CSRF,
                "HX-Request": "true",
                "Content-Type": "application/x-www-form-urlencoded",
            }
            mine = answers[index :: args.markers][: args.saves]
            # Markers start spread over one think time, as people do, not in lockstep.
            time.sleep(args.think_ms / 1000 * index / args.markers)
            for answer in mine:
                body = urlencode({"score": "1", "version": "0"})
                started = time.perf_counter()
                connection.request("POST", reverse("grading_score", args=[exam.pk, answer.pk]), body, headers)
                response = connection.getresponse()
                response.read()
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    round_trips.append(elapsed)
                    if response.status != 200:
                        failures.append(f"{response.status}")
                time.sleep(args.think_ms / 1000)

        # Warm every gunicorn worker (imports, template compilation) before measuring the steady state.
        for _ in range(30):
            warm = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            warm.request("GET", page_url, headers={"Cookie": f"sessionid={sessions[0]}"})
            warm.getresponse().read()
        threads = [threading.Thread(target=mark, args=(n,)) for n in range(args.markers)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        saved = Answer.objects.filter(question=question, score=Decimal("1")).count()
        print(f"score saves, {args.markers} markers x {len(round_trips) // max(1, args.markers)} over loopback "
              f"({args.think_ms} ms between a marker's saves): "
              f"p50 {_percentile(round_trips, 0.5):.0f} ms, p95 {_percentile(round_trips, 0.95):.0f} ms, "
              f"{len(round_trips) / seconds:.0f} saves/s; {saved} saved, {len(failures)} failed"
              + (f" (statuses {sorted(set(failures))})" if failures else ""))
    finally:
        server.terminate()
        server.wait(timeout=20)
        shutil.rmtree(work, ignore_errors=True)
    print(f"database: {django.db.connection.vendor}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()

"""Speed and memory of the outputs for the demo exam: every scored-script PDF, and the spreadsheet.

    python bench/exports.py [--students 30] [--seed 7] [--repeat 1] [--var DIR]

Untimed: ``manage.py demo`` into a throwaway ``MARKDESK_VAR_DIR`` (SQLite, DEBUG on; ``DATABASE_URL`` and
friends from the environment are ignored): the demo exam is generated, split, aligned and read with
EasyOCR, then graded and finished as its copy (``GRADED_TITLE``), whose outputs are timed.
``--var DIR`` reuses a folder from an earlier run (or from ``make run``: ``--var var``).

Timed, as the export jobs make them (``grader.outputs.services``):

``scored PDFs``   the job "all scored scripts (zip)": one PDF per script, stored in a zip;
``spreadsheet``   the job "scores spreadsheet": Scores, Answers and Questions sheets.

Prints seconds per stage and in all (target: under 15 s on 2 cores for the 30-student demo) and the
process's peak resident memory (``getrusage``, Django and the PDF engine included) after the timed part.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _django_setup(var_dir: Path) -> None:
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "MEDIA_ROOT"):
        os.environ.pop(name, None)
    os.environ.update(DJANGO_SETTINGS_MODULE="grader.settings", DEBUG="1", MARKDESK_VAR_DIR=str(var_dir))
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=1, help="time the exports this many times; the best is shown")
    parser.add_argument("--var", type=Path, help="MARKDESK_VAR_DIR to build in (or reuse); default a temporary one")
    args = parser.parse_args(argv)

    var_dir = args.var or Path(tempfile.mkdtemp(prefix="markdesk-bench-exports-"))
    try:
        _django_setup(var_dir)
        from django.core.management import call_command

        from grader.models import Exam
        from grader.outputs import services
        from grader.outputs.models import ExportJob
        from grader.management.commands.demo import GRADED_TITLE

        started = time.monotonic()
        call_command("demo", students=args.students, seed=args.seed, verbosity=0)
        exam = Exam.objects.get(title=GRADED_TITLE, owner__username="teacher")
        print(f"Demo exam ready ({exam.scripts.count()} scripts) in {time.monotonic() - started:.1f} s (untimed).")
        user = exam.owner

        best: dict[str, float] = {}
        sizes: dict[str, int] = {}
        for _ in range(args.repeat):
            for kind, label in ((ExportJob.Kind.SCRIPTS_ZIP, "scored PDFs"), (ExportJob.Kind.SPREADSHEET, "spreadsheet")):
                # Made directly rather than through export_create, which would hand it to Celery.
                job = ExportJob.objects.create(exam=exam, kind=kind, created_by=user)
                started = time.perf_counter()
                job = services.export_run(job_id=job.pk)
                seconds = time.perf_counter() - started
                if job.status != ExportJob.Status.DONE:
                    sys.exit(f"{label} failed: {job.error}")
                best[label] = min(best.get(label, seconds), seconds)
                sizes[label] = job.file.size
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        scripts = exam.scripts.count()
        for label, seconds in best.items():
            per_script = f", {seconds / scripts * 1000:.0f} ms per script" if label == "scored PDFs" else ""
            print(f"{label:<12} {seconds:6.2f} s  ({sizes[label] / 1e6:.1f} MB{per_script})")
        total = sum(best.values())
        print(f"{'total':<12} {total:6.2f} s  (target under 15 s; {os.cpu_count()} cores)  peak RSS {peak_mb:.0f} MB")
    finally:
        if args.var is None:
            shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()

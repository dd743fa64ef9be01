"""Benchmark the whole grading pipeline in one process: split + align, read, suggest, identity.

    python bench/pipeline.py [--demo DIR] [--students 30] [--seed 7] [--threads N] [--processes N] [--tracemalloc]

Runs the app's own services (as ``manage.py grade_folder`` does) on a demo exam: the folder given with
``--demo`` (template.pdf, annotations.json, roster.xlsx, answers.xlsx, scans.pdf), else one generated
by ``ml.demo_data`` into a temporary folder. Django is set up on a throwaway ``MARKDESK_VAR_DIR``
(SQLite, DEBUG on; ``DATABASE_URL`` and friends from the environment are ignored) and migrated first.

Untimed: building the demo, creating the exam with its roster, key, template and boxes, and loading
EasyOCR (and the sentence model used by suggestions). Timed, in order:

``split+align``  scan_files_accept + scan_upload_process: render every page of scans.pdf at 150 dpi,
                 detect blank backs, match and align each page to the template, group into scripts
                 (``align`` is the part spent in page matching and alignment);
``read``         script_read for every script: place every box (NAME, ID, CLASS and questions),
                 blank detection, EasyOCR on the ink, store answers (suggestions switched off here);
``suggest``      similarity and suggested score for every answer (answers_suggest);
``identity``     exam_identity_match: scripts to roster students.

``--processes 2`` reads scripts in two forked processes, as a CPU worker started with
``--concurrency 2`` does (the models are loaded once, before the fork).

"boxes/s end to end" = boxes read / the sum of the timed stages (wall clock); CPU seconds of this
process are shown beside, since on a shared machine the wall clock depends on everyone else. Peak memory is the process's peak
resident set (``getrusage``, models included); ``--tracemalloc`` adds the peak of Python allocations
during the timed stages (it slows Python code down, so timings with it are not comparable).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _django_setup(var_dir: Path) -> None:
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "MEDIA_ROOT"):
        os.environ.pop(name, None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "grader.settings"
    os.environ["DEBUG"] = "1"
    os.environ["MARKDESK_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _script_read_ocr(script_id: int) -> int:
    from grader.reading import services as reading

    return reading.script_read(script_id=script_id, engines=[reading.OCR])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, help="an exam folder to use instead of generating one")
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--absent", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads once the models are loaded (default: what engine_get sets)")
    parser.add_argument("--processes", type=int, default=1, help="processes reading scripts (a worker's --concurrency)")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder (database, pages, demo)")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="markdesk-bench-pipeline-"))
    _django_setup(work / "var")

    from django.core.files import File

    from annotations import services as box_services
    from grader import services
    from grader.scans import services as scans
    from grader.models import User
    from grader.reading import services as reading
    from grader.reading.models import Answer
    from ml.demo_data import DemoConfig, demo_build
    from ml.similarity import semantic_model_load

    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs; work dir {work}")
    folder = args.demo
    if folder is None:
        folder = work / "demo"
        started = time.perf_counter()
        demo_build(out_dir=folder, config=DemoConfig(students=args.students, absent=args.absent, seed=args.seed))
        print(f"demo built in {time.perf_counter() - started:.1f} s: {folder}")

    started = time.perf_counter()
    user = User.objects.create_user("bench", role=User.Role.ADMIN)
    exam = services.exam_create(owner=user, title="bench", pages_per_script=2)
    for name, importer in (("roster.xlsx", services.roster_import), ("answers.xlsx", services.answer_key_import)):
        with (folder / name).open("rb") as handle:
            importer(exam=exam, file=File(handle, name=name))
    with (folder / "template.pdf").open("rb") as handle:
        pages = services.template_upload(exam=exam, file=File(handle, name="template.pdf"))
    exam.pages_per_script = len(pages)
    exam.save(update_fields=["pages_per_script"])
    box_services.boxes_import(exam=exam, fmt="annotations", data=(folder / "annotations.json").read_bytes(), user=user)
    print(f"setup (exam, roster, key, template, boxes) {time.perf_counter() - started:.1f} s")

    import torch

    started = time.perf_counter()
    engine = reading.engine_get(reading.OCR)
    engine.reader  # noqa: B018 - loads the model (engine_get's config may set the thread count)
    semantic_model_load()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"model load (EasyOCR + sentence model) {time.perf_counter() - started:.1f} s; "
          f"torch threads {torch.get_num_threads()}; cuda {torch.cuda.is_available()}; peak RSS {_rss_mib():.0f} MiB")

    # Time page matching/alignment inside scan processing, and keep suggestions out of the read stage.
    align_seconds = [0.0]
    page_place = scans._page_place

    def timed_page_place(**kwargs):
        began = time.perf_counter()
        try:
            return page_place(**kwargs)
        finally:
            align_seconds[0] += time.perf_counter() - began

    scans._page_place = timed_page_place
    answers_suggest = reading.answers_suggest
    reading.answers_suggest = lambda *, answers: None

    if args.tracemalloc:
        tracemalloc.start()
    stages: dict[str, float] = {}
    cpu: dict[str, float] = {}
    clock = time.process_time()
    started = time.perf_counter()
    with (folder / "scans.pdf").open("rb") as handle:
        intake = scans.scan_files_accept(exam=exam, files=[File(handle, name="scans.pdf")], user=user)
    upload = scans.scan_upload_process(upload_id=intake.accepted[0].pk)
    stages["split+align"] = time.perf_counter() - started
    cpu["split+align"], clock = time.process_time() - clock, time.process_time()
    if upload.status != upload.Status.DONE:
        raise SystemExit(f"processing the scans failed: {upload.error}")

    started = time.perf_counter()
    scripts = list(exam.scripts.order_by("number").values_list("pk", flat=True))
    if args.processes > 1:
        from django.db import connections

        connections.close_all()  # each forked process opens its own
        with multiprocessing.get_context("fork").Pool(args.processes) as pool:
            boxes = sum(pool.map(_script_read_ocr, scripts))
    else:
        boxes = sum(_script_read_ocr(script_id) for script_id in scripts)
    stages["read"] = time.perf_counter() - started
    cpu["read"], clock = time.process_time() - clock, time.process_time()

    reading.answers_suggest = answers_suggest
    started = time.perf_counter()
    reading.answers_suggest(answers=Answer.objects.filter(script__exam=exam).select_related("question", "question__exam"))
    stages["suggest"] = time.perf_counter() - started
    cpu["suggest"], clock = time.process_time() - clock, time.process_time()

    started = time.perf_counter()
    result = reading.exam_identity_match(exam_id=exam.pk)
    stages["identity"] = time.perf_counter() - started
    cpu["identity"] = time.process_time() - clock
    traced_peak = tracemalloc.get_traced_memory()[1] if args.tracemalloc else None
    scans._page_place = page_place

    total = sum(stages.values())
    blank = Answer.objects.filter(script__exam=exam, blank=True).count()
    print(f"\n{upload.pages_total} scan pages, {len(scripts)} scripts, {boxes} boxes read "
          f"({blank} blank answers), {sum(m.confident for m in result.matches)} scripts matched confidently")
    for name, seconds in stages.items():
        print(f"  {name:<12} {seconds:7.2f} s   (CPU {cpu[name]:6.2f} s)")
        if name == "split+align":
            print(f"    {'align':<10} {align_seconds[0]:7.2f} s  (page matching + alignment)")
    print(f"  {'end to end':<12} {total:7.2f} s  = {boxes / total:.1f} boxes/s, "
          f"{len(scripts) / total:.2f} scripts/s (after model load)")
    print(f"  {'':<12} CPU {sum(cpu.values()):6.2f} s = {boxes / sum(cpu.values()):.1f} boxes per CPU second")
    print(f"  read stage alone: {boxes / stages['read']:.1f} boxes/s")
    print(f"peak RSS {_rss_mib():.0f} MiB" + (f"; peak traced Python allocations {traced_peak / 2**20:.0f} MiB"
                                               if traced_peak is not None else ""))
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

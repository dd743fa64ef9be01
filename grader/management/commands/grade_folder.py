"""``python manage.py grade_folder DIR --out OUT [--owner USERNAME] [--engine easyocr] [--replay TEACHER.json]``.

Grades a folder of exam files in this process (no worker), through the same services as the web app,
and writes ``OUT/results.json``, ``OUT/scores.xlsx`` (the results spreadsheet, suggested scores as
final) and ``OUT/scripts/<ID>.pdf`` (each student's scored script; ``script-<n>.pdf`` for a script
matched to no student). The folder holds:

``template.pdf``      the blank exam (its page count is the number of pages per script);
``annotations.json``  the answer boxes, seed-001 form ``{"0": [{"x", "y", "width", "height", "label"}]}``
                      in template pixels at 150 dpi (labels NAME, ID, CLASS and the questions);
``roster.xlsx``       ID, NAME, CLASS, EMAIL;
``answers.xlsx``      QUESTION, ANSWER, MAX_SCORE and optional ACCEPT;
``scans.pdf``         the scripts one after another, each in template page order.

An exam titled after the folder is created for ``--owner`` (default: the first superuser or
administrator) and kept, so a teacher can review it in the app. If anything fails, the exam and its
stored files are deleted again and the command stops with an error naming the file at fault.

``results.json``::

    {"scripts": [{"pages": [0, 1], "student_id": "S1001", "identity_confidence": 0.93,
                  "answers": [{"question": "Q1", "text": "Na", "blank": false, "flagged": false,
                               "similarity": 0.97, "suggested_score": 1, "max_score": 1,
                               "box": {"page": 0, "bbox": [x1, y1, x2, y2]}}]}],
     "absent": ["S1006"], "unmatched_scripts": [3]}

* ``scripts`` in scan order. ``pages``: the script's pages as 0-based page indexes of scans.pdf, in
  template order (blank back pages set aside are not listed).
* ``student_id``: the roster ID of the student the script was confidently matched to, else null;
  ``identity_confidence``: the match score in [0, 1] of the best roster candidate (null when the
  script has no NAME/ID reading).
* ``answers`` in answer-key order, for every question with a box. ``text``: what the engine read
  ("" for a blank box); ``flagged``: a person should check the reading (low confidence, unread,
  reading failed); ``similarity`` in [0, 1] and ``suggested_score`` (marks) are null when the key has
  no answer for the question; ``box.page`` is the 0-based scans.pdf page and ``box.bbox`` the box as
  aligned on that page, ``[x1, y1, x2, y2]`` scan pixels at 150 dpi (null when the script lacks the page).
* ``absent``: roster IDs (roster order) that no script was matched to. A student whose script could
  not be matched confidently is listed here while the script is listed in ``unmatched_scripts``.
* ``unmatched_scripts``: 0-based indexes into ``scripts`` of the scripts without a ``student_id``.

``--replay TEACHER.json`` then grades the exam as the teacher of that file would, key by key, and writes
``OUT/replay.json`` (keystrokes per answer, agreement of suggestions with the teacher, CER; see
``grader.grading.replay``). ``results.json`` keeps the suggestions as they stood before the replay;
``scores.xlsx`` and the scored scripts carry the teacher's scores.

``--learn-after K`` (with ``--replay``) measures learning from the teacher instead: the teacher grades
the first K scripts (scan order), typing the right text wherever the text shown is wrong
(``replay.json`` is that replay); the CPU reader then learns from those corrections
(``grader.learning``: fine-tuned, kept only if better on held-out corrections) and the exam is read
again; a scorer learns the teacher's marks on those scripts and is used on the questions where it
beat the suggestions in cross-validation; the teacher then grades the rest. ``OUT/learning.json``::

    {"learn_after": K, "reader": {"train_lines", "val_lines", "cer_before", "cer_after", "improved", ...,
                                  "scorer": {"answers", "folds", "questions": {label: {"answers", "with",
                                             "without", "offered"}}, "offered": [question id, ...]}},
     "before": {"answers", "agreement", "cer", "cer_read"},   # the remaining scripts, before learning
     "after": {...},                                           # the same scripts, read again after it
     "replay_after": {...}}                                    # replay.json's figures for the rest
"""

from __future__ import annotations

import json
import os
import shutil
import time
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from grader import services
from grader.folders import FOLDER_FILES, FolderRejected, exam_folder_load
from grader.grading.replay import ReplayRejected, replay_measure, replay_run, teacher_file_parse
from grader.learning.services import LearningRefused, reader_learn_run, reader_learn_start
from grader.models import Exam, User
from grader.outputs.services import scored_script_files
from grader.outputs.spreadsheet import scores_workbook
from grader.reading import services as reading
from grader.reading.models import Answer, ScriptIdentity
from grader.selectors import script_scan_pages
from ml import pages as page_tools

MAX_PAGES_PER_SCRIPT = 60  # Exam.pages_per_script allows 1-60


def number(value: Decimal | float | None) -> int | float | None:
    """A Decimal or float as a plain JSON number: 1 rather than 1.00, 0.5 rather than "0.50"."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return round(float(value), 4)


def results_build(*, exam: Exam) -> dict:
    """The ``results.json`` document for a graded exam (see the module docstring)."""
    scripts = []
    unmatched = []
    identities = {identity.script_id: identity for identity in ScriptIdentity.objects.filter(script__exam=exam)}
    answers_by_script: dict[int, list[Answer]] = {}
    for answer in (
        Answer.objects.filter(script__exam=exam)
        .select_related("question", "page")
        .order_by("script__number", "question__order", "question__label")
    ):
        answers_by_script.setdefault(answer.script_id, []).append(answer)
    for position, script in enumerate(exam.scripts.select_related("student").order_by("number")):
        identity = identities.get(script.pk)
        pages = list(script_scan_pages(script=script))
        if script.student is None:
            unmatched.append(position)
        scripts.append(
            {
                "pages": pages,
                "student_id": script.student.student_id if script.student else None,
                "identity_confidence": number(identity.score) if identity else None,
                "answers": [
                    {
                        "question": answer.question.label,
                        "text": answer.text,
                        "blank": answer.blank,
                        "flagged": answer.flagged or bool(answer.read_error),
                        "similarity": number(answer.similarity),
                        "suggested_score": number(answer.suggested_score),
                        "max_score": number(answer.question.max_score),
                        "box": (
                            {"page": answer.page.source_index, "bbox": [int(v) for v in answer.crop]}
                            if answer.page is not None and answer.crop
                            else None
                        ),
                    }
                    for answer in answers_by_script.get(script.pk, [])
                ],
            }
        )
    absent = list(exam.students.filter(scripts=None).order_by("pk").values_list("student_id", flat=True))
    return {"scripts": scripts, "absent": absent, "unmatched_scripts": unmatched}


def _write(path: Path, data: bytes) -> None:
    """Write through a temporary name, so a reader never sees half a file."""
    temporary = path.with_name(path.name + ".part")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def exam_discard(*, exam: Exam) -> None:
    """Delete an exam made by a failed run, with the files stored for it."""
    pk = exam.pk
    Exam.objects.filter(pk=pk).delete()
    if isinstance(default_storage, FileSystemStorage):
        shutil.rmtree(Path(default_storage.path(f"exams/{pk}")), ignore_errors=True)


class Command(BaseCommand):
    help = "Grade a folder (template.pdf, annotations.json, roster.xlsx, answers.xlsx, scans.pdf) into OUT/results.json, OUT/scores.xlsx and OUT/scripts/<ID>.pdf."

    def add_arguments(self, parser):
        parser.add_argument("folder", type=Path, help="The exam folder.")
        parser.add_argument("--out", type=Path, required=True, help="Folder to write results.json into.")
        parser.add_argument("--owner", help="Username owning the exam (default: the first superuser or administrator).")
        parser.add_argument("--engine", default=reading.OCR, help="Reading engine: easyocr (default) or vlm if configured.")
        parser.add_argument("--replay", type=Path, metavar="TEACHER.json",
                            help="Replay a teacher's scores with the grading form's keys; writes OUT/replay.json.")
        parser.add_argument("--learn-after", type=int, metavar="K",
                            help="With --replay: learn from the teacher's corrections on the first K scripts, "
                                 "read the rest again and write OUT/learning.json.")

    def handle(self, *args, folder: Path, out: Path, owner: str | None, engine: str, replay: Path | None = None,
               learn_after: int | None = None, **options):
        self.verbosity = options.get("verbosity", 1)
        if not folder.is_dir():
            raise CommandError(f"{folder} is not a folder.")
        missing = [name for name in FOLDER_FILES if not (folder / name).is_file()]
        if missing:
            raise CommandError(
                f"{folder} is missing {', '.join(missing)} "
                f"(an exam folder holds {', '.join(FOLDER_FILES)})."
            )
        if engine not in reading.engine_names():
            detail = " (VLM_MODEL_PATH is not set)" if engine == reading.VLM else ""
            raise CommandError(f"Unknown engine {engine!r}{detail}: use one of {', '.join(reading.engine_names())}.")
        if out.exists() and not out.is_dir():
            raise CommandError(f"{out} exists and is not a folder.")
        if learn_after is not None and (replay is None or learn_after < 1):
            raise CommandError("--learn-after K needs --replay TEACHER.json and K >= 1.")
        user = self._owner(owner)
        teacher = self._teacher(replay) if replay else None
        pages_per_script = self._template_pages(folder / "template.pdf")

        started = time.monotonic()
        exam = None
        try:
            exam = services.exam_create(
                owner=user, title=folder.resolve().name[:200] or "Graded folder", pages_per_script=pages_per_script
            )
            try:
                upload = exam_folder_load(exam=exam, folder=folder, user=user)
            except FolderRejected as error:
                raise CommandError(str(error)) from error
            for note in upload.notes[1:]:
                self.stderr.write(f"scans.pdf: {note}")
            scripts = list(exam.scripts.order_by("number").values_list("pk", flat=True))
            for count, script_id in enumerate(scripts, start=1):
                reading.script_read(script_id=script_id, engines=[engine])
                if self.verbosity >= 2:
                    self.stdout.write(f"Read script {count}/{len(scripts)}")
            reading.exam_resuggest(exam_id=exam.pk)
            reading.exam_identity_match(exam_id=exam.pk)
            results = results_build(exam=exam)
            out.mkdir(parents=True, exist_ok=True)
            _write(out / "results.json", json.dumps(results, indent=1, ensure_ascii=False).encode())
            if teacher is not None:
                try:
                    if learn_after is None:
                        replayed = replay_run(exam=exam, scripts=teacher, user=user)
                    else:
                        replayed, learned = self._learn(exam=exam, teacher=teacher, user=user, count=learn_after)
                        _write(out / "learning.json", json.dumps(learned, indent=1).encode())
                except ReplayRejected as error:
                    raise CommandError(f"{replay.name}: {error}") from error
                _write(out / "replay.json", json.dumps(replayed, indent=1).encode())
            _write(out / "scores.xlsx", scores_workbook(exam=exam))
            (out / "scripts").mkdir(exist_ok=True)
            for name, data in scored_script_files(exam=exam):
                _write(out / "scripts" / name, data)
        except BaseException:
            if exam is not None:
                exam_discard(exam=exam)
            raise
        self._summary(exam=exam, results=results, seconds=time.monotonic() - started, out=out)
        if teacher is not None:
            self.stdout.write(
                f"Replay: {replayed['keystrokes']} keystrokes for {replayed['answers']} answers "
                f"({replayed['keystrokes_per_answer']} per answer); suggestions agreed with the teacher on "
                f"{replayed['agreement_before_teacher']} before grading; CER {replayed['cer']}. "
                f"Details in {out / 'replay.json'}."
            )

    # ------------------------------------------------------------ steps

    def _learn(self, *, exam: Exam, teacher: list[dict], user: User, count: int) -> tuple[dict, dict]:
        """Replay the first ``count`` scripts with corrections, learn, measure the rest before and after."""
        order = list(exam.scripts.order_by("number"))
        first_pages = {script_scan_pages(script=script) for script in order[:count]}
        learned_from = [script for script in teacher if tuple(script["pages"]) in first_pages]
        rest = [script for script in teacher if tuple(script["pages"]) not in first_pages]
        before = replay_measure(exam=exam, scripts=rest)
        replayed = replay_run(exam=exam, scripts=learned_from, user=user, correct_texts=True)
        try:
            job = reader_learn_start(exam=exam, user=user, enqueue=False)
        except LearningRefused as refused:
            raise CommandError(f"Cannot learn after {count} scripts: {refused}") from refused
        job = reader_learn_run(job_id=job.pk)
        if job.status == job.Status.FAILED:
            raise CommandError(f"Learning failed: {job.error}")
        after = replay_measure(exam=exam, scripts=rest)
        return replayed, {"learn_after": count, "reader": job.metrics, "before": before, "after": after,
                          "replay_after": replay_run(exam=exam, scripts=rest, user=user)}

    @staticmethod
    def _teacher(path: Path) -> list[dict]:
        try:
            return teacher_file_parse(data=path.read_bytes())
        except OSError as error:
            raise CommandError(f"{path}: {error.strerror or error}") from error
        except ReplayRejected as error:
            raise CommandError(f"{path.name}: {error}") from error

    def _owner(self, username: str | None) -> User:
        if username:
            try:
                return User.objects.get(username=username)
            except User.DoesNotExist as error:
                raise CommandError(f"There is no user {username!r}.") from error
        user = User.objects.filter(Q(is_superuser=True) | Q(role=User.Role.ADMIN), is_active=True).order_by("pk").first()
        if user is None:
            raise CommandError(
                "There is no superuser or administrator to own the exam: pass --owner USERNAME "
                "or create one with `manage.py createsuperuser`."
            )
        return user

    @staticmethod
    def _template_pages(path: Path) -> int:
        try:
            info = page_tools.document_inspect(
                path=path, name=path.name, max_pixels=settings.MAX_IMAGE_PIXELS, dpi=settings.PAGE_DPI
            )
        except page_tools.DocumentError as error:
            raise CommandError(error if path.name in str(error) else f"{path.name}: {error}") from error
        if info.kind != "pdf":
            raise CommandError(f"{path.name} is an image; the blank exam must be a PDF.")
        if info.page_count > MAX_PAGES_PER_SCRIPT:
            raise CommandError(f"{path.name} has {info.page_count} pages; at most 60 per script are supported.")
        return info.page_count

    def _summary(self, *, exam: Exam, results: dict, seconds: float, out: Path) -> None:
        scripts = results["scripts"]
        answers = [answer for script in scripts for answer in script["answers"]]
        unboxed = list(exam.questions.filter(boxes=None).values_list("label", flat=True))
        if unboxed:
            self.stderr.write(f"Questions in answers.xlsx without a box, not read: {', '.join(unboxed)}.")
        self.stdout.write(
            f"{len(scripts)} scripts, {len(scripts) - len(results['unmatched_scripts'])} matched to the roster "
            f"({len(results['unmatched_scripts'])} unmatched, {len(results['absent'])} absent); "
            f"{sum(answer['flagged'] for answer in answers)} of {len(answers)} answers flagged; "
            f"{seconds:.1f} s. Exam {exam.pk}; results in {out / 'results.json'}, {out / 'scores.xlsx'} "
            f"and {out / 'scripts'}."
        )

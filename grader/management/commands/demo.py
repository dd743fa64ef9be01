"""``python manage.py demo``: a realistic demo exam, loaded through the same services as the UI.

Builds (or reuses) the generated demo folder under ``MARKDESK_VAR_DIR/demo`` with ``ml.demo_data``, then
creates the exam, imports the roster and answer key, stores the blank exam, processes and reads the scans:
an exam ready to grade. A second exam, ``GRADED_TITLE``, is that exam backed up, restored and graded the
way a careful teacher would (every script's student confirmed, every misread text corrected, every answer
scored from the generator's truth, absent students waived, a few comments) and marked finished, so the
outputs, and learning from the corrections, can be tried at once. In both, Q11 is marked by a rubric (the
answer key's RUBRIC sheet) with a comment bank (the backup carries both to the graded copy); the graded
copy scores it by dimension, with a comment.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from grader import services
from grader.folders import FolderRejected, exam_folder_load
from grader.grading import services as grading
from grader.grading.models import CompletenessWaiver
from grader.grading.selectors import exam_completeness
from grader.models import Department, Exam, User
from grader.outputs.backup import exam_backup_write, exam_restore
from grader.reading import services as reading
from grader.rubrics import services as rubrics
from grader.rubrics.sheets import rubric_sheet_import
from ml.demo_data import (
    EXAM_DATE,
    FULL_MARK_KINDS,
    RUBRIC_COMMENTS,
    RUBRIC_QUESTION,
    TITLE,
    DemoConfig,
    demo_build,
)

DEMO_PASSWORD = "markdesk"
GRADED_TITLE = f"{TITLE} (graded)"
# Truth kinds a teacher gives full marks; "wrong" and "blank" score 0.
_COMMENTS = {"top": "Excellent work: full and precise answers throughout.",
             "bottom": "Let's go through the answers together in class; revise units 3 and 4."}
# username, first, last, role
DEMO_PEOPLE = (
    ("teacher", "Hannah", "Moore", User.Role.TEACHER),
    ("teacher2", "David", "Osei", User.Role.TEACHER),
    ("head", "Priya", "Raman", User.Role.HEAD),
    ("admin", "Site", "Admin", User.Role.ADMIN),
)


class Command(BaseCommand):
    help = "Load the demo exam (roster, answer key, blank exam and ~28 scanned scripts). Does nothing if it is loaded."

    def add_arguments(self, parser):
        parser.add_argument("--reset", action="store_true", help="Delete the demo exam and load it again.")
        parser.add_argument("--students", type=int, default=DemoConfig.students)
        parser.add_argument("--seed", type=int, default=DemoConfig.seed)
        parser.add_argument(
            "--owner", help="Owner's username. Without it, demo logins are created (only allowed with DEBUG on)."
        )

    def handle(self, *args, reset: bool, students: int, seed: int, owner: str | None, **options):
        teacher = self._owner(owner)
        existing = Exam.objects.filter(title__in=[TITLE, GRADED_TITLE], owner=teacher)
        if existing.filter(title=TITLE).exists() and not reset:
            self.stdout.write(f"The demo exam is already loaded (exam {existing.first().pk}); use --reset to rebuild it.")
            return
        existing.delete()

        config = DemoConfig(students=students, seed=seed)
        folder = self._demo_folder(config)
        started = time.monotonic()
        exam = services.exam_create(
            owner=teacher,
            title=TITLE,
            subject="Science",
            date=EXAM_DATE,
            classes="9A, 9B",
            pages_per_script=2,
            co_markers=User.objects.filter(username="teacher2"),
        )
        try:
            exam_folder_load(exam=exam, folder=folder, user=teacher)
        except FolderRejected as error:
            raise CommandError(str(error)) from error
        self._rubric_question(exam=exam, folder=folder, teacher=teacher)
        self.stdout.write("Reading every answer box with EasyOCR and suggesting scores…")
        reading.exam_read(exam_id=exam.pk)
        self.stdout.write(
            self.style.SUCCESS(
                f"Loaded the demo exam {exam.pk}: {exam.students.count()} students, {exam.questions.count()} questions, "
                f"{exam.boxes.count()} answer boxes, {exam.scripts.exclude(student=None).count()} of "
                f"{exam.scripts.count()} scripts matched to students, in {time.monotonic() - started:.1f}s."
            )
        )
        graded = self._graded_copy(exam=exam, truth=json.loads((folder / "truth.json").read_text()), teacher=teacher)
        self.stdout.write(self.style.SUCCESS(f"Loaded {graded.title} (exam {graded.pk}): graded and finished."))

    def _rubric_question(self, *, exam: Exam, folder: Path, teacher: User) -> None:
        """Mark the demo's rubric question by the RUBRIC sheet of its answer key, with its comment bank."""
        rubric_sheet_import(exam=exam, user=teacher, data=(folder / "answers.xlsx").read_bytes())
        question = exam.questions.get(label=RUBRIC_QUESTION)
        for text in RUBRIC_COMMENTS:
            rubrics.comment_add(question_id=question.pk, text=text)

    def _graded_copy(self, *, exam: Exam, truth: dict, teacher: User) -> Exam:
        """A copy of ``exam`` graded from the generator's truth and finished (see the module docstring)."""
        with tempfile.TemporaryFile() as archive:
            exam_backup_write(exam=exam, out=archive)
            archive.seek(0)
            graded = exam_restore(archive=archive, owner=teacher)
        Exam.objects.filter(pk=graded.pk).update(title=GRADED_TITLE)
        graded.refresh_from_db()
        graded.co_markers.set(exam.co_markers.all())  # a restore leaves its owner the only marker
        students = {student.student_id: student for student in graded.students.all()}
        scripts = list(graded.scripts.order_by("number"))  # numbered in scan order, as truth lists them
        totals = {}
        for script, written in zip(scripts, truth["scripts"], strict=True):
            reading.identity_confirm(script=script, student=students[written["student_id"]], user=teacher)
            kinds = {answer["label"]: answer["kind"] for answer in written["answers"]}
            texts = {answer["label"]: answer["text"] for answer in written["answers"]}
            total = Decimal(0)
            for answer in script.answers.select_related("question"):
                # The teacher corrected every misread text: the copy has corrections to learn from.
                truth_text = texts.get(answer.question.label, "")
                if truth_text and " ".join(answer.text.split()).casefold() != " ".join(truth_text.split()).casefold():
                    answer = grading.text_confirm(answer_id=answer.pk, text=truth_text,
                                                  expected_version=answer.version, user=teacher)
                full = kinds.get(answer.question.label) in FULL_MARK_KINDS
                score = answer.question.max_score if full else Decimal(0)
                if answer.question.label == RUBRIC_QUESTION:
                    # Every dimension full or none, with the bank comment that says so.
                    dimensions = answer.question.rubric_link.rubric.dimensions.all()
                    rubrics.rubric_answer_save(
                        answer_id=answer.pk, points=[d.max_points if full else Decimal(0) for d in dimensions],
                        comment_numbers=[1 if full else 2], text="", expected_version=answer.version, user=teacher)
                else:
                    grading.score_set(answer_id=answer.pk, score=score, expected_version=answer.version, user=teacher)
                total += score
            totals[script.pk] = total
        ranked = sorted(scripts, key=lambda script: totals[script.pk])
        for script, comment in ((ranked[-1], _COMMENTS["top"]), (ranked[0], _COMMENTS["bottom"])):
            services.script_comment_set(script=script, comment=comment)
        for item in exam_completeness(exam_id=graded.pk).open_items:
            if item.kind == CompletenessWaiver.Kind.ABSENT:
                grading.completeness_waive(exam_id=graded.pk, kind=item.kind, object_id=item.object_id, user=teacher,
                                           reason="Absent on the day of the test")
        try:
            grading.exam_finish(exam_id=graded.pk, user=teacher)
        except grading.CompletenessRefused as refused:
            raise CommandError(f"{refused} " + "; ".join(item.label for item in refused.items)) from refused
        return graded

    def _owner(self, username: str | None) -> User:
        if username:
            try:
                return User.objects.get(username=username)
            except User.DoesNotExist as error:
                raise CommandError(f"There is no user {username!r}.") from error
        if not settings.DEBUG:
            raise CommandError("Demo logins have a public password: pass --owner USERNAME when DEBUG is off.")
        department, _ = Department.objects.get_or_create(name="Science")
        for username_, first, last, role in DEMO_PEOPLE:
            user, created = User.objects.get_or_create(
                username=username_,
                defaults={"first_name": first, "last_name": last, "role": role, "department": department,
                          "email": f"{username_}@school.example.org"},
            )
            if created:
                user.is_staff = user.is_superuser = role == User.Role.ADMIN
                user.set_password(DEMO_PASSWORD)
                user.save()
        return User.objects.get(username="teacher")

    def _demo_folder(self, config: DemoConfig) -> Path:
        """The generated files, rebuilt only when the configuration changed."""
        folder = Path(settings.VAR_DIR) / "demo"
        stamp = folder / "config.json"
        wanted = json.dumps(asdict(config), sort_keys=True)
        if not (stamp.exists() and stamp.read_text() == wanted and (folder / "scans.pdf").exists()):
            self.stdout.write("Generating the demo scans (handwriting fonts, scanner noise)…")
            folder.mkdir(parents=True, exist_ok=True)
            demo_build(out_dir=folder, config=config)
            stamp.write_text(wanted)
        return folder

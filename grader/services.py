"""Domain operations on exams, rosters, answer keys, the blank exam (template) and script comments.

Scan intake and page moves are ``grader.scans.services``.

Functions are keyword-only and named noun_verb. Each changes the database in one transaction, so a
failure leaves what was stored before untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Max

from grader.reading.services import exam_resuggest_enqueue, questions_resuggest_enqueue
from ml import pages as page_tools

from .documents import UploadRejected, file_size_check, png_bytes, upload_inspect
from .labels import QUESTION_LABEL_PATTERN, question_label_normalise
from .models import RESERVED_LABELS, Department, Exam, Question, Script, Student, TemplatePage, User
from .sheet_import import ImportSummary, SpreadsheetError, cell_text, sheet_rows

logger = logging.getLogger(__name__)

ROSTER_COLUMNS = ("ID", "NAME", "CLASS", "EMAIL")
_ROSTER_FIELDS = {"ID": "student_id", "NAME": "name", "CLASS": "class_name", "EMAIL": "email"}
KEY_COLUMNS = ("QUESTION", "ANSWER", "MAX_SCORE")
KEY_OPTIONAL_COLUMNS = ("ACCEPT",)


class RecordRefused(ValueError):
    """A roster or answer-key entry clashes with another one; the message says which. Nothing changed."""


class ImportProblems(ValueError):
    """A spreadsheet had problems; nothing was imported. ``problems`` are messages with row numbers."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s): " + "; ".join(self.problems))


# ---------------------------------------------------------------- exams


@transaction.atomic
def exam_create(
    *,
    owner: User,
    title: str,
    subject: str = "",
    date: date | None = None,
    department: Department | None = None,
    classes: str = "",
    pages_per_script: int = 2,
    anonymous: bool = False,
    drop_blank_pages: bool | None = None,
    default_min_similarity: float | None = None,
    default_granularity: Decimal | None = None,
    co_markers: Iterable[User] = (),
) -> Exam:
    scoring = {
        name: value
        for name, value in (("default_min_similarity", default_min_similarity), ("default_granularity", default_granularity))
        if value is not None
    }
    exam = Exam.objects.create(
        **scoring,
        owner=owner,
        title=title,
        subject=subject,
        date=date,
        department=department if department is not None else owner.department,
        classes=classes,
        pages_per_script=pages_per_script,
        anonymous=anonymous,
        drop_blank_pages=settings.DROP_BLANK_PAGES_DEFAULT if drop_blank_pages is None else drop_blank_pages,
    )
    exam.co_markers.set([user for user in co_markers if user.pk != owner.pk])
    return exam


# What the exam form changes (``exam_update``); co-markers are a list of users, set apart.
EXAM_SETTINGS = (
    "title", "subject", "date", "department", "classes", "pages_per_script", "anonymous", "drop_blank_pages",
    "default_min_similarity", "default_granularity",
)


@transaction.atomic
def exam_update(*, exam: Exam, co_markers: Iterable[User] | None = None, **changes: object) -> Exam:
    """Change an exam's settings (``EXAM_SETTINGS``) and co-markers under the exam's lock.

    New scoring defaults re-suggest every question once committed: suggestions follow the defaults,
    scores a teacher set stay as they are. Raises ``RecordRefused`` when a question without its own
    granularity has a max score that is not a multiple of the default granularity.
    """
    unknown = sorted(set(changes) - set(EXAM_SETTINGS))
    if unknown:
        raise TypeError(f"exam_update() does not change {', '.join(unknown)}")
    locked = Exam.objects.select_for_update().get(pk=exam.pk)
    granularity = changes.get("default_granularity", locked.default_granularity)
    misfits = [f"{question.label} (max {question.max_score.normalize():f})"
               for question in locked.questions.filter(granularity=None) if question.max_score % granularity]
    if misfits:
        raise RecordRefused(
            f"These questions' max scores are not multiples of {granularity.normalize():f}: {', '.join(misfits)}. "
            "Change them or give them their own granularity first."
        )
    scoring_before = (locked.default_min_similarity, locked.default_granularity)
    for name, value in changes.items():
        setattr(locked, name, value)
    locked.save()
    if co_markers is not None:
        locked.co_markers.set([user for user in co_markers if user.pk != locked.owner_id])
    if (locked.default_min_similarity, locked.default_granularity) != scoring_before:
        exam_resuggest_enqueue(exam=locked)
    return locked


# ---------------------------------------------------------------- roster


@transaction.atomic
def student_save(
    *, exam: Exam, student: Student | None = None, student_id: str, name: str, class_name: str = "", email: str = ""
) -> Student:
    """Add a student to the roster (``student`` None) or change one, under the exam's lock.

    Raises ``RecordRefused`` when another student of the exam has ``student_id``.
    """
    Exam.objects.select_for_update().get(pk=exam.pk)
    clash = exam.students.filter(student_id=student_id).exclude(pk=student.pk if student else None).first()
    if clash is not None:
        raise RecordRefused(f"{student_id} is already on the roster ({clash.name}).")
    student = Student.objects.get(pk=student.pk) if student else Student(exam=exam)
    student.student_id, student.name, student.class_name, student.email = student_id, name, class_name, email
    student.save()
    return student


@transaction.atomic
def student_delete(*, student: Student) -> None:
    Exam.objects.select_for_update().get(pk=student.exam_id)
    student.delete()


def _sheet_rows_or_problems(*, file: UploadedFile, required: Sequence[str], optional: Sequence[str] = ()):
    try:
        file_size_check(file=file)
        return sheet_rows(file=file, required=required, optional=optional,
                          max_rows=settings.IMPORT_MAX_ROWS, max_columns=settings.IMPORT_MAX_COLUMNS)
    except SpreadsheetError as error:
        raise ImportProblems(error.problems) from error
    except UploadRejected as error:
        raise ImportProblems([str(error)]) from error


@transaction.atomic
def roster_import(*, exam: Exam, file: UploadedFile) -> ImportSummary:
    """Import students from an .xlsx with columns ID, NAME, CLASS, EMAIL (any order and case).

    All or nothing: any problem (duplicate or empty ID, empty name, bad email) imports no row and
    raises ``ImportProblems`` listing every problem with its row number. Students are matched on ID,
    so importing again updates them instead of adding copies; students missing from the file are kept.
    """
    rows = _sheet_rows_or_problems(file=file, required=ROSTER_COLUMNS)
    problems: list[str] = []
    seen: dict[str, int] = {}
    parsed: list[dict[str, str]] = []
    for row in rows:
        student_id = cell_text(row.values["ID"])
        name = " ".join(cell_text(row.values["NAME"]).split())
        class_name = cell_text(row.values["CLASS"])
        email = cell_text(row.values["EMAIL"])
        if not student_id:
            problems.append(f"Row {row.number}: the ID is empty.")
        elif len(student_id) > 64:
            problems.append(f"Row {row.number}: the ID {student_id[:20]}… is longer than 64 characters.")
        elif student_id in seen:
            problems.append(f"Row {row.number}: the ID {student_id} is also used in row {seen[student_id]}.")
        else:
            seen[student_id] = row.number
        if not name:
            problems.append(f"Row {row.number}: the NAME is empty.")
        for column, value in (("NAME", name), ("CLASS", class_name), ("EMAIL", email)):
            limit = Student._meta.get_field(_ROSTER_FIELDS[column]).max_length
            if len(value) > limit:
                problems.append(f"Row {row.number}: the {column} is longer than {limit} characters.")
        if email:
            try:
                validate_email(email)
            except ValidationError:
                problems.append(f"Row {row.number}: {email!r} is not a valid email address.")
        parsed.append({"student_id": student_id, "name": name, "class_name": class_name, "email": email})
    if not rows:
        problems.append("The file has a header row but no students.")
    if problems:
        raise ImportProblems(problems)

    summary = ImportSummary()
    existing = {student.student_id: student for student in Student.objects.select_for_update().filter(exam=exam)}
    for entry in parsed:
        student = existing.pop(entry["student_id"], None)
        if student is None:
            Student.objects.create(exam=exam, **entry)
            summary.created += 1
        elif any(getattr(student, key) != value for key, value in entry.items()):
            for key, value in entry.items():
                setattr(student, key, value)
            student.save()
            summary.updated += 1
        else:
            summary.unchanged += 1
    summary.kept = sorted(existing)
    logger.info("Exam %s: %s", exam.pk, summary.message("roster"))
    return summary


# ---------------------------------------------------------------- answer key


def accept_split(text: str) -> list[str]:
    """Other accepted answers as a teacher lists them: separated by ``|``, blanks dropped."""
    return [part.strip() for part in text.split("|") if part.strip()]


@transaction.atomic
def question_save(
    *, exam: Exam, question: Question | None = None, label: str, answer: str, accept: Sequence[str], max_score: Decimal
) -> Question:
    """Add a question at the end of the answer key (``question`` None) or change one, under the exam's lock.

    A changed key answer or maximum re-suggests scores for the answers already read (teacher scores
    stay). Raises ``RecordRefused`` when another question of the exam has ``label``, or for a rubric
    question's maximum other than its rubric's total.
    """
    Exam.objects.select_for_update().get(pk=exam.pk)
    if exam.questions.filter(label=label).exclude(pk=question.pk if question else None).exists():
        raise RecordRefused(f"{label} is already in the answer key.")
    if question is None:
        question = Question(exam=exam, order=(exam.questions.aggregate(top=Max("order"))["top"] or 0) + 1)
    else:
        question = Question.objects.get(pk=question.pk)  # as stored: a bound form changed the caller's copy
        total = question.rubric_total()
        if total is not None and max_score != total:
            raise RecordRefused(f"{question.label} is marked by a rubric, so its max score is the rubric's total, "
                                f"{total.normalize():f}; change the rubric's dimensions to change it.")
        if (question.answer, question.accept, question.max_score) != (answer, list(accept), max_score):
            questions_resuggest_enqueue(question_ids=[question.pk])
    question.label, question.answer, question.accept, question.max_score = label, answer, list(accept), max_score
    question.save()
    return question


@transaction.atomic
def question_delete(*, question: Question) -> None:
    Exam.objects.select_for_update().get(pk=question.exam_id)
    question.delete()


def _max_score_parse(raw: object) -> Decimal | None:
    try:
        value = Decimal(cell_text(raw))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


@transaction.atomic
def answer_key_import(*, exam: Exam, file: UploadedFile) -> ImportSummary:
    """Import the answer key from an .xlsx with QUESTION, ANSWER, MAX_SCORE and optional ACCEPT.

    ACCEPT lists other accepted answers separated by ``|``. All or nothing like ``roster_import``:
    problems are an empty or unknown question label, a question listed twice, and a max score that is
    missing, not a number or negative, or not the rubric's total for a question marked by a rubric.
    Questions are matched on their label; the file's row order becomes the question order.
    """
    rows = _sheet_rows_or_problems(file=file, required=KEY_COLUMNS, optional=KEY_OPTIONAL_COLUMNS)
    problems: list[str] = []
    seen: dict[str, int] = {}
    parsed: list[dict] = []
    rubric_totals = {q.label: q.rubric_total() for q in Question.objects.filter(exam=exam, rubric_link__isnull=False)}
    for row in rows:
        raw_label = cell_text(row.values["QUESTION"])
        label = question_label_normalise(raw_label)
        if not label:
            problems.append(f"Row {row.number}: the QUESTION is empty.")
        elif label.upper() in RESERVED_LABELS:
            problems.append(
                f"Row {row.number}: unknown question {raw_label!r}: NAME, ID and CLASS are the student's details, not questions."
            )
        elif not QUESTION_LABEL_PATTERN.fullmatch(label):
            problems.append(
                f"Row {row.number}: unknown question {raw_label!r}: use labels like Q1, Q2a or 3 (letters, digits, at most 32)."
            )
        elif label in seen:
            problems.append(f"Row {row.number}: question {label} is also listed in row {seen[label]}.")
        else:
            seen[label] = row.number
        max_raw = cell_text(row.values["MAX_SCORE"])
        max_score = _max_score_parse(row.values["MAX_SCORE"])
        if not max_raw:
            problems.append(f"Row {row.number}: MAX_SCORE is empty.")
        elif max_score is None:
            problems.append(f"Row {row.number}: MAX_SCORE {max_raw!r} is not a number.")
        elif max_score < 0:
            problems.append(f"Row {row.number}: MAX_SCORE {max_raw} is negative.")
        elif max_score > Decimal("9999"):
            problems.append(f"Row {row.number}: MAX_SCORE {max_raw} is too large.")
        elif label in rubric_totals and max_score != rubric_totals[label]:
            problems.append(f"Row {row.number}: {label} is marked by a rubric, so its MAX_SCORE is the rubric's total, "
                            f"{rubric_totals[label].normalize():f}; change the rubric to change it.")
        accept = accept_split(cell_text(row.values.get("ACCEPT")))
        parsed.append(
            {"label": label, "answer": cell_text(row.values["ANSWER"]), "max_score": max_score, "accept": accept}
        )
    if not rows:
        problems.append("The file has a header row but no questions.")
    if problems:
        raise ImportProblems(problems)

    summary = ImportSummary()
    existing = {question.label: question for question in Question.objects.select_for_update().filter(exam=exam)}
    changed = []
    for order, entry in enumerate(parsed, start=1):
        values = {**entry, "order": order, "max_score": entry["max_score"].quantize(Decimal("0.01"))}
        question = existing.pop(entry["label"], None)
        if question is None:
            Question.objects.create(exam=exam, **values)
            summary.created += 1
        elif any(getattr(question, key) != value for key, value in values.items()):
            for key, value in values.items():
                setattr(question, key, value)
            question.save()
            summary.updated += 1
            changed.append(question.pk)
        else:
            summary.unchanged += 1
    # A new key answer or maximum changes what is suggested for answers already read.
    questions_resuggest_enqueue(question_ids=changed)
    summary.kept = sorted(existing)
    logger.info("Exam %s: %s", exam.pk, summary.message("answer key"))
    return summary


# ---------------------------------------------------------------- the blank exam


def template_upload(*, exam: Exam, file: UploadedFile) -> list[TemplatePage]:
    """Store the blank exam PDF and its pages rasterised at ``settings.PAGE_DPI``.

    Replaces an earlier template only once the new one has been read completely.
    """
    stored = upload_inspect(file=file)
    try:
        if stored.info.kind != "pdf":
            raise UploadRejected(f"{file.name} is an image; upload the blank exam as a PDF.")
        images = list(
            page_tools.document_pages(
                path=stored.path, kind="pdf", max_pixels=settings.MAX_IMAGE_PIXELS, dpi=settings.PAGE_DPI
            )
        )
        with transaction.atomic():
            Exam.objects.select_for_update().get(pk=exam.pk)
            exam.template_pages.all().delete()
            with stored.path.open("rb") as handle:
                exam.template_pdf.save(f"exam-{exam.pk}-template.pdf", File(handle), save=True)
            created = []
            for index, image in enumerate(images):
                page = TemplatePage(exam=exam, index=index, width=image.width, height=image.height)
                page.image.save(f"page-{index + 1}.png", ContentFile(png_bytes(image)), save=True)
                created.append(page)
        logger.info("Template for exam %s: %d pages", exam.pk, len(created))
        return created
    finally:
        stored.path.unlink(missing_ok=True)


# ---------------------------------------------------------------- scripts


SCRIPT_COMMENT_MAX = 2000


def script_comment_set(*, script: Script, comment: str) -> Script:
    """The teacher's comment for the student, printed on the scored script (at most 2000 characters)."""
    comment = comment.strip().replace("\r\n", "\n")
    if len(comment) > SCRIPT_COMMENT_MAX:
        raise ValueError(f"A comment holds at most {SCRIPT_COMMENT_MAX} characters; this one has {len(comment)}.")
    Script.objects.filter(pk=script.pk).update(comment=comment)
    script.comment = comment
    return script

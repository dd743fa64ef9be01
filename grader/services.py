"""Domain operations on exams, rosters, answer keys, templates, scans and scripts.

Functions are keyword-only and named noun_verb. Each changes the database in one transaction, so a
failure leaves what was stored before untouched.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.template.defaultfilters import filesizeformat
from PIL import Image

from ml import pages as page_tools
from ml.alignment import alignment_to_dict, page_align
from grader.wording import counted

from .models import RESERVED_LABELS, Department, Exam, Question, ScanPage, ScanUpload, Script, Student, TemplatePage, User
from .spreadsheets import SpreadsheetError, cell_text, sheet_rows

logger = logging.getLogger(__name__)

ROSTER_COLUMNS = ("ID", "NAME", "CLASS", "EMAIL")
_ROSTER_FIELDS = {"ID": "student_id", "NAME": "name", "CLASS": "class_name", "EMAIL": "email"}
KEY_COLUMNS = ("QUESTION", "ANSWER", "MAX_SCORE")
KEY_OPTIONAL_COLUMNS = ("ACCEPT",)
QUESTION_LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()\-]{0,31}$")
# Scan pages are stored as high-quality JPEG: PNG of a noisy scan is ten times larger for no gain in reading.
_SCAN_JPEG_QUALITY = 92


class ImportProblems(ValueError):
    """A spreadsheet had problems; nothing was imported. ``problems`` are messages with row numbers."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s): " + "; ".join(self.problems))


class UploadRejected(ValueError):
    """An uploaded file was refused; the message is written for the teacher. Nothing was stored."""


@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    kept: list[str] = field(default_factory=list)  # existing entries the file did not mention

    def message(self, noun: str) -> str:
        text = f"Imported {noun}: {self.created} added, {self.updated} updated, {self.unchanged} unchanged."
        if self.kept:
            text += f" {len(self.kept)} already in markdesk but not in the file were kept: {', '.join(self.kept[:10])}"
            text += "…" if len(self.kept) > 10 else "."
        return text


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


# ---------------------------------------------------------------- roster


def _file_size_check(*, file: UploadedFile) -> None:
    limit = settings.MAX_UPLOAD_MB * 1024 * 1024
    if file.size is not None and file.size > limit:
        raise UploadRejected(
            f"{file.name} is {filesizeformat(file.size)}, over the {settings.MAX_UPLOAD_MB} MB limit for one file."
        )


def _sheet_rows_or_problems(*, file: UploadedFile, required: Sequence[str], optional: Sequence[str] = ()):
    try:
        _file_size_check(file=file)
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


def question_label_normalise(raw: object) -> str:
    """Question labels as teachers write them: ``1`` or ``1.0`` becomes ``Q1``, ``q3`` becomes ``Q3``."""
    text = cell_text(raw)
    if re.fullmatch(r"\d+", text):
        return f"Q{int(text)}"
    if re.fullmatch(r"[qQ]\d+[a-z]?", text):
        return text[0].upper() + text[1:]
    return text


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
    missing, not a number or negative. Questions are matched on their label; the file's row order
    becomes the question order.
    """
    rows = _sheet_rows_or_problems(file=file, required=KEY_COLUMNS, optional=KEY_OPTIONAL_COLUMNS)
    problems: list[str] = []
    seen: dict[str, int] = {}
    parsed: list[dict] = []
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
        accept = [part.strip() for part in cell_text(row.values.get("ACCEPT")).split("|") if part.strip()]
        parsed.append(
            {"label": label, "answer": cell_text(row.values["ANSWER"]), "max_score": max_score, "accept": accept}
        )
    if not rows:
        problems.append("The file has a header row but no questions.")
    if problems:
        raise ImportProblems(problems)

    from grader.reading.services import questions_resuggest_enqueue

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


# ---------------------------------------------------------------- documents


@dataclass
class _StoredUpload:
    path: Path
    sha256: str
    info: page_tools.DocumentInfo


def _upload_spool(*, file: UploadedFile) -> tuple[Path, str]:
    """Copy an upload to a private temporary file, hashing it on the way."""
    _file_size_check(file=file)
    digest = hashlib.sha256()
    handle = tempfile.NamedTemporaryFile(prefix="markdesk-upload-", delete=False)
    with handle:
        for chunk in file.chunks():
            digest.update(chunk)
            handle.write(chunk)
    return Path(handle.name), digest.hexdigest()


def _upload_inspect(*, file: UploadedFile) -> _StoredUpload:
    path, sha256 = _upload_spool(file=file)
    try:
        info = page_tools.document_inspect(
            path=path, name=file.name, max_pixels=settings.MAX_IMAGE_PIXELS, dpi=settings.PAGE_DPI
        )
    except page_tools.DocumentError as error:
        path.unlink(missing_ok=True)
        raise UploadRejected(str(error)) from error
    return _StoredUpload(path=path, sha256=sha256, info=info)


def _jpeg_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=_SCAN_JPEG_QUALITY, dpi=(settings.PAGE_DPI, settings.PAGE_DPI))
    return buffer.getvalue()


def _png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", dpi=(settings.PAGE_DPI, settings.PAGE_DPI))
    return buffer.getvalue()


def template_upload(*, exam: Exam, file: UploadedFile) -> list[TemplatePage]:
    """Store the blank exam PDF and its pages rasterised at ``settings.PAGE_DPI``.

    Replaces an earlier template only once the new one has been read completely.
    """
    stored = _upload_inspect(file=file)
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
                page.image.save(f"page-{index + 1}.png", ContentFile(_png_bytes(image)), save=True)
                created.append(page)
        logger.info("Template for exam %s: %d pages", exam.pk, len(created))
        return created
    finally:
        stored.path.unlink(missing_ok=True)


@dataclass
class ScanIntake:
    accepted: list[ScanUpload] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def scan_files_accept(*, exam: Exam, files: Sequence[UploadedFile], user: User | None) -> ScanIntake:
    """Check each uploaded scan file and store the good ones as queued uploads.

    Every file is judged on its own: a bad file (one of more than ``MAX_PAGES_PER_UPLOAD`` pages
    included) is reported and skipped without affecting the others or anything stored before. A file
    whose content was already uploaded to this exam is reported as a duplicate and not stored again. Processing is queued by the caller (``scan_upload_enqueue``).
    """
    intake = ScanIntake()
    for file in files:
        try:
            stored = _scan_inspect(file=file)
        except UploadRejected as error:
            logger.warning("Scan upload refused for exam %s: %s", exam.pk, error)
            intake.rejected.append(str(error))
            continue
        try:
            if not _upload_duplicate_note(exam=exam, sha256=stored.sha256, name=file.name, intake=intake):
                try:
                    with transaction.atomic(), stored.path.open("rb") as handle:
                        upload = ScanUpload(
                            exam=exam,
                            original_name=file.name[:255],
                            size=stored.path.stat().st_size,
                            sha256=stored.sha256,
                            kind=stored.info.kind,
                            uploaded_by=user,
                            pages_total=stored.info.page_count,
                        )
                        suffix = Path(file.name).suffix.lower()[:8]
                        upload.file.save(f"{stored.sha256[:16]}{suffix}", File(handle), save=True)
                    intake.accepted.append(upload)
                except IntegrityError:
                    # Another teacher uploaded the same file a moment ago.
                    upload.file.delete(save=False)
                    _upload_duplicate_note(exam=exam, sha256=stored.sha256, name=file.name, intake=intake)
        finally:
            stored.path.unlink(missing_ok=True)
    return intake


def _scan_inspect(*, file: UploadedFile) -> _StoredUpload:
    stored = _upload_inspect(file=file)
    pages = stored.info.page_count
    if pages > settings.MAX_PAGES_PER_UPLOAD:
        stored.path.unlink(missing_ok=True)
        raise UploadRejected(
            f"{file.name} has {pages:,} pages, more than the {settings.MAX_PAGES_PER_UPLOAD:,} markdesk takes in one "
            "scan file. Split it into smaller files and upload those; nothing was stored."
        )
    return stored


def _upload_duplicate_note(*, exam: Exam, sha256: str, name: str, intake: ScanIntake) -> bool:
    earlier = ScanUpload.objects.filter(exam=exam, sha256=sha256).first()
    if earlier is None:
        return False
    intake.duplicates.append(
        f"{name} has the same content as {earlier.original_name}, uploaded "
        f"{earlier.created_at:%d %b %Y %H:%M}; it was not added again."
    )
    return True


def scan_upload_enqueue(*, upload: ScanUpload) -> None:
    """Queue processing once the upload's row is committed, so the worker can read it."""
    from .tasks import scan_upload_process_task

    transaction.on_commit(lambda: scan_upload_process_task.delay(upload.pk))


@dataclass(frozen=True)
class _TemplatePage:
    image: Image.Image
    features: page_tools.PageFeatures


def _templates_load(*, exam: Exam) -> list[_TemplatePage]:
    templates = []
    for page in exam.template_pages.order_by("index"):
        with page.image.open("rb") as handle:
            image = Image.open(handle).convert("RGB")
        templates.append(_TemplatePage(image=image, features=page_tools.page_features(image)))
    return templates


def _page_place(*, page: ScanPage, image: Image.Image, templates: Sequence[_TemplatePage]) -> None:
    """Find the template page a scanned page shows and register it there (template px -> scan px)."""
    features = page_tools.page_features(image)
    page.template_scores = [page_tools.page_match(features, template.features) for template in templates]
    best = max(range(len(templates)), key=page.template_scores.__getitem__)
    if page.template_scores[best] < settings.TEMPLATE_MATCH_MIN:
        return
    alignment = page_align(template=templates[best].image, scan=image)
    page.template_index = best
    page.transform = alignment_to_dict(alignment)
    page.alignment_note = "" if alignment.ok else alignment.reason


def _next_script_number(*, exam: Exam) -> int:
    return (exam.scripts.aggregate(top=Max("number"))["top"] or 0) + 1


def scan_upload_process(*, upload_id: int) -> ScanUpload:
    """Rasterise an upload's pages, set aside blank backs, and group the rest into scripts.

    Pages are grouped in scan order into scripts of ``exam.pages_per_script``. Pages left over when
    the count does not divide evenly go to the unassigned tray with a flag naming them; pages that do
    not look like their template page are flagged but stay in their script. Safe to run again: pages
    from an earlier, interrupted run of the same upload are replaced.
    """
    upload = ScanUpload.objects.select_related("exam").get(pk=upload_id)
    if upload.status == ScanUpload.Status.DONE:
        return upload
    exam = upload.exam
    ScanUpload.objects.filter(pk=upload.pk).update(
        status=ScanUpload.Status.PROCESSING, stage="Reading pages", pages_done=0, error=""
    )
    try:
        _scan_upload_pages_store(upload=upload, exam=exam)
        _scan_upload_group(upload=upload, exam=exam)
    except Exception as error:  # a bad file must not take the worker down; the teacher sees why
        logger.exception("Processing upload %s (%s) failed", upload.pk, upload.original_name)
        message = str(error) if isinstance(error, page_tools.DocumentError) else f"Processing failed: {error}"
        ScanUpload.objects.filter(pk=upload.pk).update(status=ScanUpload.Status.FAILED, stage="", error=message)
        upload.refresh_from_db()
        return upload
    upload.refresh_from_db()
    return upload


def _scan_upload_pages_store(*, upload: ScanUpload, exam: Exam) -> None:
    with transaction.atomic():
        stale_scripts = set(upload.pages.exclude(script=None).values_list("script_id", flat=True))
        upload.pages.all().delete()
        Script.objects.filter(pk__in=stale_scripts, pages=None).delete()
    templates = _templates_load(exam=exam)
    template_width = templates[0].image.width if templates else None
    ScanUpload.objects.filter(pk=upload.pk).update(stage="Reading and aligning pages")
    done = 0
    for index, image in enumerate(
        page_tools.document_pages(
            path=Path(upload.file.path),
            kind=upload.kind,
            max_pixels=settings.MAX_IMAGE_PIXELS,
            dpi=settings.PAGE_DPI,
            fallback_width=template_width,
            name=upload.original_name,
        )
    ):
        page = ScanPage(
            exam=exam,
            upload=upload,
            source_index=index,
            width=image.width,
            height=image.height,
            ink_fraction=page_tools.ink_fraction(image),
        )
        if templates and page.ink_fraction >= settings.BLANK_PAGE_INK_FRACTION:
            _page_place(page=page, image=image, templates=templates)
        page.image.save(f"u{upload.pk}-p{index + 1}.jpg", ContentFile(_jpeg_bytes(image)), save=True)
        done += 1
        ScanUpload.objects.filter(pk=upload.pk).update(pages_done=done, pages_total=max(done, upload.pages_total))


@transaction.atomic
def _scan_upload_group(*, upload: ScanUpload, exam: Exam) -> None:
    Exam.objects.select_for_update().get(pk=exam.pk)  # script numbers are handed out one upload at a time
    pages = list(upload.pages.order_by("source_index"))
    notes: list[str] = []
    kept: list[ScanPage] = []
    blank_threshold = settings.BLANK_PAGE_INK_FRACTION
    blanks = []
    for page in pages:
        if exam.drop_blank_pages and page.ink_fraction < blank_threshold:
            page.discarded, page.discard_reason = True, "Blank back page"
            blanks.append(page.source_index + 1)
        else:
            kept.append(page)
    if blanks:
        notes.append(f"Set aside {counted(len(blanks), 'blank page')}: {_page_list(blanks)}. Restore any that are not blank.")

    per_script = exam.pages_per_script
    full = len(kept) - len(kept) % per_script
    number = _next_script_number(exam=exam)
    for start in range(0, full, per_script):
        script = Script.objects.create(exam=exam, number=number)
        number += 1
        for position, page in enumerate(kept[start : start + per_script]):
            page.script, page.position = script, position
    leftovers = kept[full:]
    if leftovers:
        numbers = [page.source_index + 1 for page in leftovers]
        message = (
            f"{len(kept)} pages do not divide into scripts of {per_script}: "
            f"{_page_list(numbers)} left unassigned. Move them into the right script."
        )
        notes.append(message)
        for page in leftovers:
            page.flag = "Left over: not enough pages for a whole script."

    strangers, misplaced, unaligned = [], [], []
    for page in kept:
        scores = page.template_scores
        if not scores:
            continue
        best = max(range(len(scores)), key=scores.__getitem__)
        if scores[best] < settings.TEMPLATE_MATCH_MIN:
            page.flag = f"Does not look like a page of this exam ({scores[best]} printed features match)."
            strangers.append(page.source_index + 1)
        elif page.alignment_note:
            page.flag = f"Could not be aligned to the blank exam ({page.alignment_note}); boxes are placed uncorrected."
            unaligned.append(page.source_index + 1)
        elif page.position is not None and page.position < len(scores) and best != page.position:
            # Only a clear winner counts: pages of one exam share headers and footers.
            if scores[best] >= 2 * max(scores[page.position], 1):
                page.flag = f"Looks like page {best + 1} of the exam but is page {page.position + 1} of its script."
                misplaced.append(page.source_index + 1)
    if strangers:
        notes.append(f"{_page_list(strangers)} do not look like pages of this exam; check them.")
    if unaligned:
        notes.append(f"{_page_list(unaligned)} could not be aligned; check their boxes.")
    if misplaced:
        notes.append(f"{_page_list(misplaced)} seem to be out of order within their scripts.")

    ScanPage.objects.bulk_update(pages, ["discarded", "discard_reason", "script", "position", "flag"])
    script_count = full // per_script
    notes.insert(0, f"{counted(len(pages), 'page')} read, {counted(script_count, 'script')} made.")
    ScanUpload.objects.filter(pk=upload.pk).update(status=ScanUpload.Status.DONE, stage="", notes=notes)
    logger.info("Upload %s: %s", upload.pk, " ".join(notes))


def _page_list(numbers: Sequence[int]) -> str:
    label = "page" if len(numbers) == 1 else "pages"
    return f"{label} {', '.join(str(n) for n in numbers)}"


# ---------------------------------------------------------------- page organisation


def _script_positions_compact(*, script: Script) -> None:
    for position, page in enumerate(script.pages.filter(discarded=False).order_by("position", "pk")):
        if page.position != position:
            ScanPage.objects.filter(pk=page.pk).update(position=position)


@transaction.atomic
def page_move(*, page: ScanPage, script: Script | None, position: int | None = None) -> ScanPage:
    """Put ``page`` into ``script`` at ``position`` (0-based; ``None`` = at the end), or in the tray.

    Both scripts involved are locked so that two teachers rearranging at once cannot interleave.
    """
    Exam.objects.select_for_update().get(pk=page.exam_id)
    page = ScanPage.objects.select_for_update().get(pk=page.pk)
    source = page.script
    if script is not None and script.exam_id != page.exam_id:
        raise ValueError("A page can only move between scripts of its own exam.")
    page.script, page.position = None, None
    page.discarded, page.discard_reason = False, ""
    page.flag = ""
    page.save(update_fields=["script", "position", "discarded", "discard_reason", "flag"])
    if source is not None:
        _script_positions_compact(script=source)
    if script is not None:
        siblings = list(script.pages.filter(discarded=False).order_by("position", "pk"))
        insert_at = len(siblings) if position is None else max(0, min(position, len(siblings)))
        siblings.insert(insert_at, page)
        for index, sibling in enumerate(siblings):
            ScanPage.objects.filter(pk=sibling.pk).update(script=script, position=index)
    page.refresh_from_db()
    return page


@transaction.atomic
def page_discard(*, page: ScanPage, reason: str) -> ScanPage:
    """Take a page out of its script; it stays listed with ``reason`` and can be restored."""
    Exam.objects.select_for_update().get(pk=page.exam_id)
    source = page.script
    ScanPage.objects.filter(pk=page.pk).update(script=None, position=None, discarded=True, discard_reason=reason)
    if source is not None:
        _script_positions_compact(script=source)
    page.refresh_from_db()
    return page


@transaction.atomic
def script_create(*, exam: Exam) -> Script:
    Exam.objects.select_for_update().get(pk=exam.pk)
    return Script.objects.create(exam=exam, number=_next_script_number(exam=exam))


@transaction.atomic
def script_delete_if_empty(*, script: Script) -> bool:
    """Remove a script that has no pages left; a script with pages is never deleted."""
    Exam.objects.select_for_update().get(pk=script.exam_id)
    if script.pages.exists():
        return False
    script.delete()
    return True


SCRIPT_COMMENT_MAX = 2000


def script_comment_set(*, script: Script, comment: str) -> Script:
    """The teacher's comment for the student, printed on the scored script (at most 2000 characters)."""
    comment = comment.strip().replace("\r\n", "\n")
    if len(comment) > SCRIPT_COMMENT_MAX:
        raise ValueError(f"A comment holds at most {SCRIPT_COMMENT_MAX} characters; this one has {len(comment)}.")
    Script.objects.filter(pk=script.pk).update(comment=comment)
    script.comment = comment
    return script

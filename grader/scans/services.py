"""Scan intake: uploaded scan files become scripts.

The pipeline's first stage: each file is checked and stored (``scan_files_accept``), then a worker
rasterises its pages, aligns each to its page of the blank exam, sets blank backs aside and groups
the rest into scripts (``scan_upload_process``), and hands the upload to reading. Teachers then
move, remove and restore pages (``page_move``, ``page_discard``) and add or delete scripts.
Functions are keyword-only and named noun_verb; each change is one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone
from PIL import Image

from grader.documents import StoredUpload, UploadRejected, jpeg_bytes, upload_inspect
from grader.models import Exam, ScanPage, ScanUpload, Script, User, _scan_page_path
from grader.recovery.jobs import DB_ERRORS, db_reconnect, db_retrying
from grader.wording import counted
from ml import pages as page_tools
from ml.alignment import alignment_to_dict, page_align

logger = logging.getLogger(__name__)


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


def _scan_inspect(*, file: UploadedFile) -> StoredUpload:
    stored = upload_inspect(file=file)
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
    stopped = earlier.status == ScanUpload.Status.FAILED or earlier.stalled
    intake.duplicates.append(
        f"{name} has the same content as {earlier.original_name}, uploaded "
        f"{earlier.created_at:%d %b %Y %H:%M}; it was not added again."
        + (" That upload stopped before it was processed: use “Process again” on it, or “Cancel” to remove it." if stopped else "")
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
    from an earlier, interrupted run of the same upload are replaced (their image files deleted).
    An upload another worker is processing (its heartbeat fresh) is left to it; a broken database
    connection puts the upload back in the queue and is raised, for the task to retry.
    """
    with transaction.atomic():
        upload = ScanUpload.objects.select_for_update(of=("self",)).select_related("exam").get(pk=upload_id)
        if upload.status == ScanUpload.Status.DONE or (upload.status == ScanUpload.Status.PROCESSING
                                                        and not upload.stalled):
            return upload
        ScanUpload.objects.filter(pk=upload.pk).update(
            status=ScanUpload.Status.PROCESSING, stage="Reading pages", pages_done=0, error="",
            heartbeat_at=timezone.now()
        )
    exam = upload.exam
    try:
        _scan_upload_pages_store(upload=upload, exam=exam)
        _scan_upload_group(upload=upload, exam=exam)
    except DB_ERRORS:
        db_reconnect()
        db_retrying(lambda: ScanUpload.objects.filter(pk=upload.pk).update(status=ScanUpload.Status.QUEUED))
        raise
    except Exception as error:  # a bad file must not take the worker down; the teacher sees why
        logger.exception("Processing upload %s (%s) failed", upload.pk, upload.original_name)
        message = str(error) if isinstance(error, page_tools.DocumentError) else f"Processing failed: {error}"
        db_retrying(lambda: ScanUpload.objects.filter(pk=upload.pk).update(
            status=ScanUpload.Status.FAILED, stage="", error=message))
    upload.refresh_from_db()
    return upload


@transaction.atomic
def scan_upload_restart(*, upload: ScanUpload) -> ScanUpload:
    """Process an upload again from its file ("Process again" on a stalled or failed upload, or the
    recovery sweep); a finished upload, or one being processed, is left as it is."""
    upload = ScanUpload.objects.select_for_update().get(pk=upload.pk)
    if upload.status == ScanUpload.Status.DONE or (upload.status != ScanUpload.Status.FAILED and not upload.stalled):
        return upload
    upload.status, upload.error, upload.heartbeat_at = ScanUpload.Status.QUEUED, "", timezone.now()
    upload.save(update_fields=["status", "error", "heartbeat_at"])
    scan_upload_enqueue(upload=upload)
    return upload


class UploadCancelRefused(ValueError):
    """The upload cannot be cancelled; the message says why, for the teacher."""


@transaction.atomic
def scan_upload_cancel(*, upload: ScanUpload) -> None:
    """"Cancel" on a stalled or failed upload: it goes, with its file, the pages it made (rows and
    files) and the scripts left without pages, so the file can be uploaded again. Refused for an
    upload that finished or is being processed, and when a teacher has scored or typed an answer on
    one of its scripts (that work would go with them)."""
    Exam.objects.select_for_update().get(pk=upload.exam_id)
    upload = ScanUpload.objects.select_for_update().get(pk=upload.pk)
    if upload.status == ScanUpload.Status.DONE or (upload.status != ScanUpload.Status.FAILED and not upload.stalled):
        raise UploadCancelRefused(f"{upload.original_name} is not stalled or failed, so it cannot be cancelled.")
    scripts = set(upload.pages.exclude(script=None).values_list("script_id", flat=True))
    touched = list(Script.objects.filter(pk__in=scripts).filter(
        Q(answers__score__isnull=False) | Q(answers__confirmed_text__isnull=False)).values_list("number", flat=True).distinct())
    if touched:
        raise UploadCancelRefused(
            f"You have scored or corrected answers on script{'s' if len(touched) > 1 else ''} "
            f"{', '.join(str(number) for number in sorted(touched))} from {upload.original_name}; "
            "use “Process again” instead, which keeps them.")
    upload.pages.all().delete()
    Script.objects.filter(pk__in=scripts, pages=None).delete()
    # Files go once the rows are gone for good: a rolled-back cancel keeps an upload that still works.
    gone = ScanUpload(pk=upload.pk, exam_id=upload.exam_id)
    storage, name = upload.file.storage, upload.file.name
    upload.delete()
    transaction.on_commit(lambda: (_upload_page_files_delete(upload=gone), storage.delete(name)))


def _scan_upload_pages_store(*, upload: ScanUpload, exam: Exam) -> None:
    with transaction.atomic():
        stale_scripts = set(upload.pages.exclude(script=None).values_list("script_id", flat=True))
        upload.pages.all().delete()
        Script.objects.filter(pk__in=stale_scripts, pages=None).delete()
    _upload_page_files_delete(upload=upload)
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
        page.image.save(f"u{upload.pk}-p{index + 1}.jpg", ContentFile(jpeg_bytes(image)), save=True)
        done += 1
        ScanUpload.objects.filter(pk=upload.pk).update(pages_done=done, pages_total=max(done, upload.pages_total),
                                                       heartbeat_at=timezone.now())


def _upload_page_files_delete(*, upload: ScanUpload) -> None:
    """Delete the page image files of an upload whose page rows are gone: those of the rows, and any a
    killed worker saved before it could save the row (page files are named ``u<upload>-p<n>``)."""
    storage = ScanPage._meta.get_field("image").storage
    folder = _scan_page_path(ScanPage(exam_id=upload.exam_id), "").rstrip("/")
    try:
        _, names = storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in names:
        if name.startswith(f"u{upload.pk}-p"):
            storage.delete(f"{folder}/{name}")


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


# ---------------------------------------------------------------- rearranging pages


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

"""Exam folders: one exam's files side by side, as the demo generator writes them and
``grade_folder`` reads them.

``template.pdf`` (the blank exam), ``annotations.json`` (seed-001 boxes, template pixels at 150 dpi),
``roster.xlsx``, ``answers.xlsx`` and ``scans.pdf`` (the scripts one after another).
"""

from __future__ import annotations

from pathlib import Path

from django.core.files import File

from annotations import services as box_services

from . import services
from .scans import services as scan_services
from .models import Exam, ScanUpload, User

FOLDER_FILES = ("template.pdf", "annotations.json", "roster.xlsx", "answers.xlsx", "scans.pdf")


class FolderRejected(ValueError):
    """A file of the folder cannot be used; the message names it."""


def _named(name: str, message: str) -> str:
    return message if name in message else f"{name}: {message}"


def exam_folder_load(*, exam: Exam, folder: Path, user: User) -> ScanUpload:
    """Import a folder into ``exam`` through the app's services, up to split scans (not read).

    Raises ``FolderRejected`` naming the file at fault; what was imported before stays.
    """
    missing = [name for name in FOLDER_FILES if not (folder / name).is_file()]
    if missing:
        raise FolderRejected(f"{folder} is missing {', '.join(missing)} (an exam folder holds {', '.join(FOLDER_FILES)}).")
    for name, importer in (("roster.xlsx", services.roster_import), ("answers.xlsx", services.answer_key_import)):
        with (folder / name).open("rb") as handle:
            try:
                importer(exam=exam, file=File(handle, name=name))
            except services.ImportProblems as error:
                raise FolderRejected(f"{name} has problems:\n  " + "\n  ".join(error.problems)) from error
    with (folder / "template.pdf").open("rb") as handle:
        try:
            services.template_upload(exam=exam, file=File(handle, name="template.pdf"))
        except services.UploadRejected as error:
            raise FolderRejected(_named("template.pdf", str(error))) from error
    try:
        box_services.boxes_import(exam=exam, fmt="annotations", data=(folder / "annotations.json").read_bytes(), user=user)
    except box_services.BoxRejected as error:
        raise FolderRejected("annotations.json is not usable:\n  " + "\n  ".join(error.problems)) from error
    if not exam.boxes.filter(question__isnull=False).exists():
        raise FolderRejected("annotations.json has no question boxes: nothing to read.")
    with (folder / "scans.pdf").open("rb") as handle:
        intake = scan_services.scan_files_accept(exam=exam, files=[File(handle, name="scans.pdf")], user=user)
    if intake.rejected:
        raise FolderRejected(_named("scans.pdf", "; ".join(intake.rejected)))
    if intake.duplicates:
        raise FolderRejected(_named("scans.pdf", intake.duplicates[0]))
    upload = scan_services.scan_upload_process(upload_id=intake.accepted[0].pk)
    if upload.status != ScanUpload.Status.DONE:
        raise FolderRejected(_named("scans.pdf", upload.error or "processing failed"))
    if not exam.scripts.exists():
        raise FolderRejected(f"scans.pdf holds no whole script of {exam.pages_per_script} page(s).")
    return upload

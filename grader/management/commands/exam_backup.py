"""``python manage.py exam_backup EXAM_ID --out FILE.zip``: write a backup of one exam.

The zip holds every record of the exam and every stored file it names (template, scans, page
images); ``exam_restore`` makes it a new exam again, here or on another installation.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import filesizeformat

from grader.models import Exam
from grader.outputs.backup import exam_backup_write


class Command(BaseCommand):
    help = "Write a backup (zip) of one exam: its records and stored files."

    def add_arguments(self, parser):
        parser.add_argument("exam_id", type=int, help="The exam's id (the number in its address, /exams/ID/).")
        parser.add_argument("--out", required=True, type=Path, help="The zip file to write (replaced if it exists).")

    def handle(self, *args, exam_id: int, out: Path, **options):
        exam = Exam.objects.filter(pk=exam_id).first()
        if exam is None:
            raise CommandError(f"There is no exam with id {exam_id}.")
        if not out.parent.is_dir():
            raise CommandError(f"{out.parent} is not a folder: create it first, or write the backup elsewhere.")

        def progress(done: int, total: int) -> None:
            if total and (done == total or done % 100 == 0):
                self.stderr.write(f"{done}/{total} files", ending="\r" if done < total else "\n")

        try:
            with out.open("wb") as target:
                exam_backup_write(exam=exam, out=target, progress=progress)
        except OSError as error:
            out.unlink(missing_ok=True)
            raise CommandError(f"Writing {out} failed: {error}") from error
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        size = filesizeformat(out.stat().st_size)
        self.stdout.write(f"Wrote a backup of {exam.title!r} (exam {exam.pk}) to {out} ({size}).")

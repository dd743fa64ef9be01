"""``python manage.py exam_restore FILE.zip --owner USERNAME``: restore a backup as a new exam.

The new exam belongs to USERNAME (a teacher or administrator), its only marker; people the backup
names are kept as names, never linked to accounts here. Backups too large to upload through the web
page restore here.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from grader.models import User
from grader.outputs.backup import BackupRejected, exam_restore


class Command(BaseCommand):
    help = "Restore an exam backup (zip) as a new exam owned by --owner."

    def add_arguments(self, parser):
        parser.add_argument("archive", type=Path, help="The backup zip, made by exam_backup or the Results page.")
        parser.add_argument("--owner", required=True, help="Username of the teacher who will own the restored exam.")

    def handle(self, *args, archive: Path, owner: str, **options):
        if not archive.is_file():
            raise CommandError(f"{archive} is not a file.")
        user = User.objects.filter(username=owner).first()
        if user is None:
            raise CommandError(f"There is no user named {owner!r}.")
        if user.is_department_head:
            raise CommandError(f"{owner} is a department head: department heads read exams; give a teacher as --owner.")
        try:
            exam = exam_restore(archive=archive, owner=user)
        except BackupRejected as error:
            raise CommandError(f"{archive} was not restored: {error}") from error
        if exam.backup_people:
            self.stdout.write(
                f"The backup names {', '.join(exam.backup_people)}: kept as names in the history, linked to no "
                "account here; add co-markers in the exam's settings."
            )
        self.stdout.write(f"Restored {exam.title!r} as exam {exam.pk}, owned by {user.username}.")

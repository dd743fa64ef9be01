"""``python manage.py demo``: a realistic demo exam, loaded through the same services as the UI.

Builds (or reuses) the generated demo folder under ``MARKDESK_VAR_DIR/demo`` with ``ml.demo_data``, then
creates the exam, imports the roster and answer key, stores the blank exam and processes the scans.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from grader import services
from grader.folders import FolderRejected, exam_folder_load
from grader.reading import services as reading
from grader.models import Department, Exam, User
from ml.demo_data import EXAM_DATE, TITLE, DemoConfig, demo_build

DEMO_PASSWORD = "markdesk"
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
        existing = Exam.objects.filter(title=TITLE, owner=teacher)
        if existing.exists() and not reset:
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
        self.stdout.write("Reading every answer box with EasyOCR and suggesting scores…")
        reading.exam_read(exam_id=exam.pk)
        self.stdout.write(
            self.style.SUCCESS(
                f"Loaded the demo exam {exam.pk}: {exam.students.count()} students, {exam.questions.count()} questions, "
                f"{exam.boxes.count()} answer boxes, {exam.scripts.exclude(student=None).count()} of "
                f"{exam.scripts.count()} scripts matched to students, in {time.monotonic() - started:.1f}s."
            )
        )

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
                defaults={"first_name": first, "last_name": last, "role": role, "department": department},
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

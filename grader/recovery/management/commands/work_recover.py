"""``manage.py work_recover``: run the recovery sweep once, here (what Celery beat runs every minute)."""

from django.core.management.base import BaseCommand

from grader.recovery.services import work_recover


class Command(BaseCommand):
    help = ("Queue again the work that made no progress for WORK_STALLED_MINUTES: scan uploads, export and "
            "learning jobs, queued emails, unread scripts (and match identities for what is read). Safe to run at any time, as often as you like.")

    def handle(self, *args, **options) -> None:
        self.stdout.write(str(work_recover()))

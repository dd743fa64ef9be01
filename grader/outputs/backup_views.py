"""Restoring an exam from a backup zip (making backups is an export job on the Results page)."""

from __future__ import annotations

import logging

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from grader.uploads import upload_limit

from .backup import BackupRejected, exam_restore as backup_restore

logger = logging.getLogger(__name__)


class RestoreForm(forms.Form):
    file = forms.FileField(label="Backup (.zip)")


def _people_note(people: list[str]) -> str:
    return (
        f"The backup names {', '.join(people)}: as names only, never linked to accounts here. The exam is yours "
        "alone (add co-markers in its settings), and its history shows who made each change by name."
    )


def _page(request: HttpRequest, form: RestoreForm, problem: str | None, *, status: int = 400) -> HttpResponse:
    context = {"form": form, "problem": problem, "max_mb": settings.MAX_UPLOAD_MB}
    return render(request, "outputs/restore.html", context, status=status if problem else 200)


def _refused(request: HttpRequest, message: str, status: int) -> HttpResponse:
    """A backup refused as it arrived, over the upload limit (``grader.uploads``)."""
    advice = "An administrator can restore it on the server: manage.py exam_restore FILE.zip --owner USERNAME."
    return _page(request, RestoreForm(), f"{message} {advice}", status=status)


def _restore(request: HttpRequest, form: RestoreForm) -> tuple[HttpResponse | None, str | None]:
    """Restore the uploaded backup: the redirect to the new exam, or the problem to show."""
    if not form.is_valid():
        return None, "Choose the backup file (.zip) to restore."
    upload = form.cleaned_data["file"]
    try:
        exam = backup_restore(archive=upload, owner=request.user)
    except BackupRejected as error:
        logger.warning("Backup %s from %s refused: %s", upload.name, request.user.username, error)
        return None, f"{upload.name} was not restored: {error}"
    messages.success(request, f"Restored {exam.title} from {upload.name}.")
    if exam.backup_people:
        messages.info(request, _people_note(exam.backup_people))
    return redirect(exam), None


@upload_limit(refused=_refused)
@login_required
def exam_restore(request: HttpRequest) -> HttpResponse:
    if request.user.is_department_head:
        raise PermissionDenied("Department heads read exams; a teacher restores them.")
    form = RestoreForm()
    problem = None
    if request.method == "POST":
        form = RestoreForm(request.POST, request.FILES)
        response, problem = _restore(request, form)
        if response is not None:
            return response
    return _page(request, form, problem)

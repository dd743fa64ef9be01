"""Scan uploads interrupted mid-processing are shown stalled, processed again, and leave no page files behind."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from grader import services
from grader.models import ScanPage, ScanUpload
from grader.recovery.services import work_recover
from grader.scans import services as scans
from tests.conftest import layout_page, pdf_bytes

pytestmark = pytest.mark.django_db
SCANS = pdf_bytes([layout_page(1), layout_page(2)] * 2)


def _scans() -> SimpleUploadedFile:
    """The same 4 pages (2 scripts) every time, byte for byte."""
    return SimpleUploadedFile("scans.pdf", SCANS, content_type="application/pdf")


@pytest.fixture
def interrupted(exam, teacher, template_pdf, settings):
    """An upload of 2 scripts whose processing stopped after its first 3 pages, 30 minutes ago."""
    settings.WORK_STALLED_MINUTES = 5
    services.template_upload(exam=exam, file=template_pdf)
    upload = scans.scan_files_accept(exam=exam, files=[_scans()], user=teacher).accepted[0]
    scans._scan_upload_pages_store(upload=upload, exam=exam)  # as far as a killed worker got: pages, no scripts
    ScanPage.objects.filter(upload=upload, source_index=3).delete()
    ScanUpload.objects.filter(pk=upload.pk).update(status=ScanUpload.Status.PROCESSING, pages_done=3,
                                                   heartbeat_at=timezone.now() - timedelta(minutes=30))
    return upload


def _page_files(exam) -> set[str]:
    folder = Path(settings.MEDIA_ROOT) / "exams" / str(exam.pk) / "pages"
    return {path.name for path in folder.iterdir()} if folder.exists() else set()


def test_an_upload_without_progress_shows_stalled_with_process_again(exam, teacher, client_for, interrupted):
    row = client_for(teacher, htmx=True).get(reverse("upload_progress", args=[exam.pk, interrupted.pk]))

    html = row.content.decode()
    assert row.status_code == 200 and 'data-status="stalled"' in html and "3/4" in html
    assert reverse("upload_restart", args=[exam.pk, interrupted.pk]) in html


def test_process_again_replaces_the_interrupted_pages_and_their_files(
    exam, teacher, client_for, interrupted, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(teacher, htmx=True).post(reverse("upload_restart", args=[exam.pk, interrupted.pk]))

    interrupted.refresh_from_db()
    assert response.status_code == 200 and interrupted.status == ScanUpload.Status.DONE
    assert sorted(exam.scripts.values_list("number", flat=True)) == [1, 2]
    assert sorted(_page_files(exam)) == sorted(Path(p.image.name).name for p in ScanPage.objects.filter(upload=interrupted))
    assert len(_page_files(exam)) == 4


def test_a_redelivered_task_leaves_an_upload_another_worker_is_processing(exam, interrupted):
    ScanUpload.objects.filter(pk=interrupted.pk).update(heartbeat_at=timezone.now())

    upload = scans.scan_upload_process(upload_id=interrupted.pk)

    assert upload.status == ScanUpload.Status.PROCESSING and ScanPage.objects.filter(upload=upload).count() == 3


def test_the_sweep_processes_a_stalled_upload_again_once(exam, interrupted, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        found = work_recover()
    with django_capture_on_commit_callbacks(execute=True):
        again = work_recover()

    interrupted.refresh_from_db()
    assert (found.uploads, again.uploads) == (1, 0) and interrupted.status == ScanUpload.Status.DONE
    assert exam.scripts.count() == 2 and len(_page_files(exam)) == 4


def test_uploading_the_file_of_a_stalled_upload_again_points_to_process_again(exam, teacher, interrupted):
    intake = scans.scan_files_accept(exam=exam, files=[_scans()], user=teacher)

    assert not intake.accepted
    (note,) = intake.duplicates
    assert "not added again" in note and "use “Process again” on it" in note


def test_cancel_removes_a_stalled_upload_its_pages_files_and_scripts_so_the_file_can_come_again(
    exam, teacher, client_for, interrupted, django_capture_on_commit_callbacks
):
    row = client_for(teacher, htmx=True).get(reverse("upload_progress", args=[exam.pk, interrupted.pk]))
    assert reverse("upload_cancel", args=[exam.pk, interrupted.pk]) in row.content.decode()
    stored = Path(interrupted.file.path)

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(teacher, htmx=True).post(reverse("upload_cancel", args=[exam.pk, interrupted.pk]))

    assert response.status_code == 200 and response.content == b"" and "uploadCancelled" in response["HX-Trigger"]
    assert not ScanUpload.objects.filter(pk=interrupted.pk).exists() and not stored.exists()
    assert not ScanPage.objects.filter(exam=exam).exists() and not exam.scripts.exists() and not _page_files(exam)
    assert scans.scan_files_accept(exam=exam, files=[_scans()], user=teacher).accepted


def test_cancel_is_refused_when_the_teacher_has_scored_an_answer_on_one_of_its_scripts(
    exam, teacher, client_for, interrupted
):
    from model_bakery import baker

    page = ScanPage.objects.filter(upload=interrupted).order_by("source_index").first()
    script = baker.make("grader.Script", exam=exam, number=7)
    ScanPage.objects.filter(pk=page.pk).update(script=script)
    baker.make("reading.Answer", script=script, question=baker.make("grader.Question", exam=exam, label="Q1"),
               score=1)

    response = client_for(teacher, htmx=True).post(reverse("upload_cancel", args=[exam.pk, interrupted.pk]))

    assert response.status_code == 409 and "script 7" in response.content.decode()
    assert ScanUpload.objects.filter(pk=interrupted.pk).exists() and ScanPage.objects.filter(upload=interrupted).count() == 3


def test_a_finished_upload_cannot_be_cancelled(exam, teacher, client_for, interrupted):
    ScanUpload.objects.filter(pk=interrupted.pk).update(status=ScanUpload.Status.DONE)

    response = client_for(teacher).post(reverse("upload_cancel", args=[exam.pk, interrupted.pk]))

    assert response.status_code == 302 and ScanUpload.objects.filter(pk=interrupted.pk).exists()

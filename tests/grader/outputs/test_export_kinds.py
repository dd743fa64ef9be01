"""Every kind of export is made by its own maker; a kind without one fails the job, never makes a backup."""

from __future__ import annotations

from model_bakery import baker

from grader.outputs import services
from grader.outputs.models import ExportJob


def test_every_export_kind_has_its_maker():
    assert set(services.FILE_MAKERS) == set(ExportJob.Kind.values)


def test_an_export_of_an_unknown_kind_fails_with_a_reason_and_makes_no_file(exam, teacher):
    job = baker.make(ExportJob, exam=exam, created_by=teacher, kind="mystery", status=ExportJob.Status.QUEUED)

    job = services.export_run(job_id=job.pk)

    assert job.status == ExportJob.Status.FAILED
    assert "kind 'mystery'" in job.error
    assert not job.file

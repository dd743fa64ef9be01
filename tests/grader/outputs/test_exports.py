"""The results page and its export jobs: who may ask for what, progress, downloads and bad requests."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.urls import reverse

from grader.outputs import services
from grader.outputs.models import ExportJob

Kind = ExportJob.Kind


@pytest.fixture
def ask(client_for, django_capture_on_commit_callbacks):
    """POST an export request as ``user`` and run the queued job (Celery is eager in tests)."""

    def post(user, exam, **data):
        with django_capture_on_commit_callbacks(execute=True):
            return client_for(user).post(reverse("export_create", args=[exam.pk]), data)

    return post


def _download(client, job):
    response = client.get(reverse("export_download", args=[job.exam_id, job.pk]))
    assert response.status_code == 200
    return b"".join(response.streaming_content), response["Content-Disposition"]


def test_the_results_page_lists_every_script_with_its_total(client_for, teacher, scored_exam):
    html = client_for(teacher).get(reverse("outputs", args=[scored_exam.pk])).content.decode()
    assert "Ada Lovelace" in html and "6/6" in html and "100%" in html
    assert "2.5/6" in html  # S4: Q2 only suggested
    assert "Grading not finished" in html and "1 score is a suggestion" in html
    assert reverse("email_students", args=[scored_exam.pk]) in html


def test_a_teacher_downloads_all_scored_scripts_as_a_zip_named_by_student_id(client_for, teacher, scored_exam, ask):
    response = ask(teacher, scored_exam, kind=Kind.SCRIPTS_ZIP)
    job = ExportJob.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"#job-{job.pk}")
    assert job.status == ExportJob.Status.DONE and (job.done, job.total) == (6, 6)
    data, disposition = _download(client_for(teacher), job)
    assert "Year 9 Science - scored scripts.zip" in disposition
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert sorted(names) == [f"S{n}.pdf" for n in range(1, 7)]
    assert all(zipfile.ZipFile(io.BytesIO(data)).read(name).startswith(b"%PDF") for name in names)


def test_one_scored_script_and_the_spreadsheet_are_made_on_request(client_for, teacher, scored_exam, ask):
    ask(teacher, scored_exam, kind=Kind.SCRIPT_PDF, script="2")
    ask(teacher, scored_exam, kind=Kind.SPREADSHEET)
    pdf_job, sheet_job = ExportJob.objects.get(kind=Kind.SCRIPT_PDF), ExportJob.objects.get(kind=Kind.SPREADSHEET)
    data, disposition = _download(client_for(teacher), pdf_job)
    assert data.startswith(b"%PDF") and "S2.pdf" in disposition
    data, disposition = _download(client_for(teacher), sheet_job)
    assert data.startswith(b"PK") and "scores.xlsx" in disposition


def test_asking_again_replaces_the_older_file_of_the_same_kind(teacher, scored_exam, ask):
    ask(teacher, scored_exam, kind=Kind.SPREADSHEET)
    first = ExportJob.objects.get()
    ask(teacher, scored_exam, kind=Kind.SPREADSHEET)
    latest = ExportJob.objects.get()
    assert latest.pk != first.pk and latest.status == ExportJob.Status.DONE
    assert not first.file.storage.exists(first.file.name)


def test_a_job_being_made_is_not_queued_twice(teacher, scored_exam):
    first = services.export_create(exam=scored_exam, kind=Kind.SPREADSHEET, params={}, user=teacher)
    again = services.export_create(exam=scored_exam, kind=Kind.SPREADSHEET, params={}, user=teacher)
    assert first.pk == again.pk and ExportJob.objects.count() == 1


def test_progress_polling_stops_when_the_file_is_ready(client_for, teacher, scored_exam, ask):
    job = services.export_create(exam=scored_exam, kind=Kind.SPREADSHEET, params={}, user=teacher)
    url = reverse("export_progress", args=[scored_exam.pk, job.pk])
    waiting = client_for(teacher, htmx=True).get(url)
    assert waiting.status_code == 200 and "hx-trigger=\"every 1s\"" in waiting.content.decode()
    services.export_run(job_id=job.pk)
    done = client_for(teacher, htmx=True).get(url)
    assert done.status_code == 286 and "exportFinished" in done["HX-Trigger"]
    assert reverse("export_download", args=[scored_exam.pk, job.pk]) in done.content.decode()
    assert client_for(teacher).get(url).status_code == 302  # without htmx: back to the results page


def test_a_head_gets_the_sample_report_but_no_other_file_and_cannot_change_scores(
    client_for, teacher, head, scored_exam, ask
):
    html = client_for(head).get(reverse("outputs", args=[scored_exam.pk])).content.decode()
    assert "Sample report" in html and "Backup" not in html and "Email students" not in html
    ask(head, scored_exam, kind=Kind.SAMPLE_REPORT, n="2")
    report = ExportJob.objects.get()
    assert report.status == ExportJob.Status.DONE, report.error
    data, _ = _download(client_for(head), report)
    assert data.startswith(b"%PDF")
    for kind in (Kind.SPREADSHEET, Kind.SCRIPTS_ZIP, Kind.BACKUP):
        assert ask(head, scored_exam, kind=kind).status_code == 403
    ask(teacher, scored_exam, kind=Kind.SPREADSHEET)
    sheet = ExportJob.objects.get(kind=Kind.SPREADSHEET)
    assert client_for(head).get(reverse("export_download", args=[scored_exam.pk, sheet.pk])).status_code == 404
    answer = scored_exam.scripts.get(number=1).answers.first()
    saved = client_for(head, htmx=True).post(reverse("grading_score", args=[scored_exam.pk, answer.pk]),
                                             {"score": "0", "version": answer.version})
    assert saved.status_code == 403


def test_another_teachers_exam_and_its_files_are_not_found(client_for, teacher, other_teacher, scored_exam, ask):
    ask(teacher, scored_exam, kind=Kind.SPREADSHEET)
    job = ExportJob.objects.get()
    client = client_for(other_teacher)
    assert client.get(reverse("outputs", args=[scored_exam.pk])).status_code == 404
    assert client.get(reverse("export_download", args=[scored_exam.pk, job.pk])).status_code == 404
    assert ask(other_teacher, scored_exam, kind=Kind.SPREADSHEET).status_code == 404


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "poster"}, "Unknown kind of file"),
        ({"kind": Kind.SCRIPT_PDF, "script": "99"}, "Choose a script of this exam"),
        ({"kind": Kind.SAMPLE_REPORT, "n": "many"}, "whole number"),
        ({"kind": Kind.SAMPLE_REPORT, "n": "0"}, "between 1 and 50"),
        ({"kind": Kind.SAMPLE_REPORT, "n": "2", "pass_mark": "lots"}, "is not a number of marks"),
    ],
)
def test_bad_requests_are_refused_with_a_clear_message(client_for, teacher, scored_exam, data, message):
    response = client_for(teacher).post(reverse("export_create", args=[scored_exam.pk]), data, follow=True)
    assert response.redirect_chain[0][1] == 302 and not ExportJob.objects.exists()
    assert message in response.content.decode()


def test_a_sample_report_that_cannot_be_drawn_fails_with_the_reason(client_for, teacher, scored_exam, ask):
    ask(teacher, scored_exam, kind=Kind.SAMPLE_REPORT, n="3", pass_mark="3")
    job = ExportJob.objects.get()
    assert job.status == ExportJob.Status.FAILED and "there are 4" in job.error
    html = client_for(teacher).get(reverse("outputs", args=[scored_exam.pk])).content.decode()
    assert "failed" in html and "there are 4" in html


def test_a_failure_while_making_a_file_is_recorded_and_logged(teacher, scored_exam, monkeypatch, caplog):
    from grader.outputs import spreadsheet

    def broken(**kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(spreadsheet, "scores_workbook", broken)
    job = services.export_create(exam=scored_exam, kind=Kind.SPREADSHEET, params={}, user=teacher)
    services.export_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == ExportJob.Status.FAILED and "No space left on device" in job.error
    assert "failed" in caplog.text


def test_an_exam_without_scripts_has_nothing_to_export(teacher, exam):
    with pytest.raises(services.ExportRefused, match="no scripts yet"):
        services.export_create(exam=exam, kind=Kind.SPREADSHEET, params={}, user=teacher)


def test_a_teacher_writes_a_comment_for_the_student_on_the_script_page(client_for, teacher, head, scored_exam):
    script = scored_exam.scripts.get(number=1)
    url = reverse("script_comment", args=[scored_exam.pk, 1])
    assert client_for(head).post(url, {"comment": "Nice"}).status_code == 403
    response = client_for(teacher).post(url, {"comment": "  Excellent work.\r\nKeep it up.  "}, follow=True)
    script.refresh_from_db()
    assert script.comment == "Excellent work.\nKeep it up."
    assert "Saved the comment" in response.content.decode()
    too_long = client_for(teacher).post(url, {"comment": "x" * 2001}, follow=True)
    assert "at most 2000 characters" in too_long.content.decode()
    script.refresh_from_db()
    assert script.comment == "Excellent work.\nKeep it up."

"""Creating and editing exams, the exam list and page, and the htmx upload-progress endpoint."""

from __future__ import annotations

import datetime
import html
import json
import re

import pytest
from django.urls import reverse
from django_htmx.http import HTMX_STOP_POLLING
from model_bakery import baker

from grader import services
from grader.scans import services as scans
from grader.models import Department, Exam, ScanPage, ScanUpload, Script, Student, User
from tests.conftest import layout_page, pdf_upload


def page_text(response) -> str:
    """The page as a reader sees it: entities decoded, runs of white space made one space."""
    return re.sub(r"\s+", " ", html.unescape(response.content.decode()))


def co_marker_choices(response) -> dict[int, str]:
    boxes = r'<input type="checkbox" name="co_markers" value="(\d+)"[^>]*> <span>([^<]*)</span>'
    return {int(pk): html.unescape(label) for pk, label in re.findall(boxes, response.content.decode())}


# ---------------------------------------------------------------- creating an exam


def test_a_teacher_creates_an_exam_and_owns_it(teacher, other_teacher, client_for):
    response = client_for(teacher).post(
        reverse("exam_create"),
        {
            "title": "Year 9 Chemistry",
            "subject": "Chemistry",
            "date": "2026-12-03",
            "department": teacher.department_id,
            "classes": "9A, 9B",
            "pages_per_script": "4",
            "anonymous": "on",
            "co_markers": [other_teacher.pk],
        },
        follow=True,
    )

    exam = Exam.objects.get()
    assert exam.owner == teacher
    assert (exam.title, exam.subject, exam.date, exam.classes, exam.pages_per_script) == (
        "Year 9 Chemistry",
        "Chemistry",
        datetime.date(2026, 12, 3),
        "9A, 9B",
        4,
    )
    assert exam.anonymous is True
    assert exam.drop_blank_pages is False  # the box was left unticked
    assert list(exam.co_markers.all()) == [other_teacher]
    assert response.redirect_chain == [(exam.get_absolute_url(), 302)]
    text = page_text(response)
    assert "Created Year 9 Chemistry. Next: the roster, the answer key and the blank exam." in text
    assert "<h1>Year 9 Chemistry</h1>" in text


def test_the_new_exam_form_suggests_the_teachers_department_and_offers_other_teachers_as_co_markers(
    department, teacher, other_teacher, head, client_for, settings
):
    settings.DROP_BLANK_PAGES_DEFAULT = True
    admin_user = baker.make(User, username="admin", role=User.Role.ADMIN, first_name="Ada", last_name="Min")
    inactive = baker.make(User, username="gone", role=User.Role.TEACHER, is_active=False)

    response = client_for(teacher).get(reverse("exam_create"))

    assert response.status_code == 200
    text = response.content.decode()
    assert re.search(rf'<option value="{department.pk}" selected>Science</option>', text)
    assert re.search(r'<input type="checkbox" name="drop_blank_pages"[^>]* checked>', text)  # the site default
    assert not re.search(r'<input type="checkbox" name="anonymous"[^>]* checked>', text)
    choices = co_marker_choices(response)
    assert set(choices) == {other_teacher.pk, admin_user.pk}  # not the owner, a head or an inactive user
    assert choices[admin_user.pk] == "Ada Min"
    assert teacher.pk not in choices and head.pk not in choices and inactive.pk not in choices


def test_a_new_exam_without_a_department_takes_the_owners(department, teacher, client_for):
    client_for(teacher).post(reverse("exam_create"), {"title": "Quiz", "pages_per_script": "1", "department": ""})

    assert Exam.objects.get().department == department


def test_the_owner_cannot_be_chosen_as_their_own_co_marker(teacher, other_teacher, client_for):
    response = client_for(teacher).post(
        reverse("exam_create"), {"title": "Quiz", "pages_per_script": "1", "co_markers": [teacher.pk, other_teacher.pk]}
    )

    assert response.status_code == 200
    assert f"Select a valid choice. {teacher.pk} is not one of the available choices." in page_text(response)
    assert not Exam.objects.exists()


def test_the_exam_service_never_makes_the_owner_a_co_marker(teacher, other_teacher):
    exam = services.exam_create(owner=teacher, title="Quiz", co_markers=[teacher, other_teacher])

    assert list(exam.co_markers.all()) == [other_teacher]
    assert exam.department == teacher.department


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"title": "", "pages_per_script": "2"}, "This field is required."),
        ({"title": "Quiz", "pages_per_script": "0"}, "Ensure this value is greater than or equal to 1."),
        ({"title": "Quiz", "pages_per_script": "61"}, "Ensure this value is less than or equal to 60."),
    ],
    ids=["no title", "no pages", "too many pages"],
)
def test_an_exam_with_bad_settings_is_not_created(teacher, client_for, data, error):
    response = client_for(teacher).post(reverse("exam_create"), data)

    assert response.status_code == 200
    assert error in page_text(response)
    assert not Exam.objects.exists()


def test_a_department_head_cannot_create_exams(head, client_for):
    client = client_for(head)

    shown = client.get(reverse("exam_create"), follow=True)
    posted = client.post(reverse("exam_create"), {"title": "Quiz", "pages_per_script": "1"}, follow=True)

    assert not Exam.objects.exists()
    for response in (shown, posted):
        assert response.redirect_chain == [(reverse("exam_list"), 302)]
        assert "Department heads read exams; a teacher creates them." in page_text(response)
    assert reverse("exam_create") not in client.get(reverse("exam_list")).content.decode()


# ---------------------------------------------------------------- editing an exam


def test_the_owner_edits_the_exam_settings(exam, teacher, other_teacher, client_for):
    client = client_for(teacher)
    url = reverse("exam_edit", args=[exam.pk])
    form = client.get(url)
    assert form.status_code == 200
    assert 'value="Year 9 Science"' in form.content.decode()
    assert teacher.pk not in co_marker_choices(form)

    response = client.post(
        url,
        {
            "title": "Year 9 Science (mock)",
            "subject": "Science",
            "date": "2027-01-15",
            "department": exam.department_id,
            "classes": "9C",
            "pages_per_script": "3",
            "drop_blank_pages": "on",
            "co_markers": [other_teacher.pk],
        },
        follow=True,
    )

    exam.refresh_from_db()
    assert (exam.title, exam.date, exam.classes, exam.pages_per_script) == (
        "Year 9 Science (mock)",
        datetime.date(2027, 1, 15),
        "9C",
        3,
    )
    assert exam.owner == teacher
    assert list(exam.co_markers.all()) == [other_teacher]
    assert response.redirect_chain == [(exam.get_absolute_url(), 302)]
    text = page_text(response)
    assert "Exam settings saved." in text
    assert "Science · 15 Jan 2027 · 9C · 3 pages per script" in text
    assert "co-markers other" in text


def test_bad_settings_are_not_saved(exam, teacher, client_for):
    response = client_for(teacher).post(reverse("exam_edit", args=[exam.pk]), {"title": "", "pages_per_script": "0"})

    assert response.status_code == 200
    assert "This field is required." in page_text(response)
    exam.refresh_from_db()
    assert (exam.title, exam.pages_per_script) == ("Year 9 Science", 2)


# ---------------------------------------------------------------- the exam list and page


def test_the_exam_list_shows_each_exams_key_facts(department, teacher, client_for):
    teacher.first_name, teacher.last_name = "Tess", "Archer"
    teacher.save()
    exam = baker.make(
        Exam, title="Mock GCSE", subject="Physics", date=datetime.date(2026, 11, 2), classes="10A, 10B", owner=teacher
    )
    baker.make(Student, exam=exam, _quantity=3)
    baker.make(Script, exam=exam, number=1)
    undated = baker.make(Exam, title="Spot quiz", owner=teacher)

    response = client_for(teacher).get(reverse("exam_list"))

    text = page_text(response)
    row = re.search(r"<tr>\s*<td><a href=\"%s\">Mock GCSE</a></td>.*?</tr>" % exam.get_absolute_url(), text, re.S)
    assert row is not None
    cells = [cell.strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)]
    assert cells[1:] == ["Physics", "2 Nov 2026", "10A, 10B", "Tess Archer", "3", "1"]
    assert f'<a href="{undated.get_absolute_url()}">Spot quiz</a>' in text


def test_a_teacher_without_exams_is_invited_to_create_one(teacher, client_for):
    text = page_text(client_for(teacher).get(reverse("exam_list")))

    assert "No exams yet. Create one to import a roster and upload scans." in text
    assert reverse("exam_create") in text


def test_the_exam_page_shows_the_settings_people_and_counts(exam, teacher, other_teacher, client_for):
    exam.subject, exam.date, exam.classes, exam.anonymous = "Science", datetime.date(2026, 12, 3), "9A, 9B", True
    exam.save()
    other_teacher.first_name, other_teacher.last_name = "Omar", "Reyes"
    other_teacher.save()
    exam.co_markers.add(other_teacher)
    baker.make(Student, exam=exam, _quantity=2)
    baker.make("grader.Question", exam=exam, label="Q1")

    text = page_text(client_for(teacher).get(exam.get_absolute_url()))

    assert "<h1>Year 9 Science</h1>" in text
    assert "Science · 3 Dec 2026 · 9A, 9B · 2 pages per script · <strong>anonymous grading</strong>" in text
    assert "Owner teacher · co-markers Omar Reyes · Science" in text
    assert "<strong>2</strong> students<span>Roster</span>" in text
    assert "<strong>1</strong> question<span>Answer key</span>" in text
    assert "<strong>0</strong> scripts<span>Scans</span>" in text
    assert "No scripts yet. Upload the scanned answer sheets above." in text


def test_the_exam_page_lists_scripts_and_pages_that_need_attention(exam, teacher, client_for):
    student = baker.make(Student, exam=exam, student_id="S1", name="Amira Haddad")
    upload = baker.make(ScanUpload, exam=exam, original_name="batch-1.pdf", status=ScanUpload.Status.DONE, sha256="b" * 64)
    script = baker.make(Script, exam=exam, number=1, student=student)
    baker.make(ScanPage, exam=exam, upload=upload, source_index=0, script=script, position=0)
    baker.make(ScanPage, exam=exam, upload=upload, source_index=1, script=script, position=1, flag="Looks odd.")
    baker.make(ScanPage, exam=exam, upload=upload, source_index=2, flag="Left over: not enough pages for a whole script.")

    text = page_text(client_for(teacher).get(exam.get_absolute_url()))

    assert "Scripts (1)" in text
    assert "<strong>Script 1</strong>" in text and "Amira Haddad" in text
    assert "Script 1</a>: batch-1.pdf p.2 — Looks odd." in text
    assert "Unassigned: batch-1.pdf p.3 — Left over: not enough pages for a whole script." in text
    assert "Unassigned pages (1)" in text


def test_an_anonymous_exam_page_hides_student_names(exam, teacher, client_for):
    exam.anonymous = True
    exam.save()
    student = baker.make(Student, exam=exam, student_id="S1", name="Amira Haddad")
    baker.make(Script, exam=exam, number=1, student=student)

    text = page_text(client_for(teacher).get(exam.get_absolute_url()))

    assert "<strong>Script 1</strong>" in text
    assert "Amira Haddad" not in text


# ---------------------------------------------------------------- upload progress (htmx)


def progress(client, upload: ScanUpload):
    return client.get(reverse("upload_progress", args=[upload.exam_id, upload.pk]))


def test_progress_of_an_upload_being_processed_is_the_row_with_polling(exam, teacher, client_for):
    upload = baker.make(
        ScanUpload,
        exam=exam,
        original_name="batch-1.pdf",
        sha256="c" * 64,
        status=ScanUpload.Status.PROCESSING,
        stage="Reading pages",
        pages_total=10,
        pages_done=3,
    )

    response = progress(client_for(teacher, htmx=True), upload)

    assert response.status_code == 200
    body = page_text(response)
    assert body.lstrip().startswith(f'<tr id="upload-{upload.pk}"')
    assert "<html" not in body
    assert f'hx-get="{reverse("upload_progress", args=[exam.pk, upload.pk])}"' in body
    assert 'hx-trigger="every 1s"' in body and 'hx-swap="outerHTML"' in body
    assert '<progress max="100" value="30"' in body
    assert "Processing: reading pages 3/10" in body
    assert "HX-Trigger" not in response.headers


@pytest.mark.parametrize(
    ("status", "fields", "shown"),
    [
        (ScanUpload.Status.DONE, {"notes": ["10 pages read, 5 scripts made."]}, ["Done", "10 pages read, 5 scripts made."]),
        (ScanUpload.Status.FAILED, {"error": "batch-1.pdf is damaged."}, ["Failed", "batch-1.pdf is damaged."]),
    ],
    ids=["done", "failed"],
)
def test_progress_of_a_finished_upload_stops_polling_and_tells_the_page(exam, teacher, client_for, status, fields, shown):
    upload = baker.make(
        ScanUpload, exam=exam, original_name="batch-1.pdf", sha256="d" * 64, status=status, pages_total=10, **fields
    )

    response = progress(client_for(teacher, htmx=True), upload)

    assert response.status_code == HTMX_STOP_POLLING == 286
    assert json.loads(response["HX-Trigger"]) == {"uploadFinished": {"upload": upload.pk, "status": status.value}}
    body = page_text(response)
    assert body.lstrip().startswith(f'<tr id="upload-{upload.pk}"')
    assert "hx-get" not in body and "hx-trigger" not in body
    for text in shown:
        assert text in body


def test_progress_follows_a_real_upload_from_queued_to_done(exam, teacher, client_for):
    exam.pages_per_script = 1
    exam.save()
    intake = scans.scan_files_accept(
        exam=exam, files=[pdf_upload([layout_page(1, size=(310, 438))] * 2, name="batch-1.pdf")], user=teacher
    )
    upload = intake.accepted[0]
    client = client_for(teacher, htmx=True)

    queued = progress(client, upload)
    scans.scan_upload_process(upload_id=upload.pk)
    done = progress(client, upload)

    assert queued.status_code == 200
    assert "hx-trigger=\"every 1s\"" in queued.content.decode()
    assert "Queued" in page_text(queued) and "0/2" in page_text(queued)
    assert done.status_code == 286
    assert "uploadFinished" in done["HX-Trigger"]
    assert "2 pages read, 2 scripts made." in page_text(done)
    assert exam.scripts.count() == 2


def test_the_exam_page_polls_unfinished_uploads_and_reloads_when_one_finishes(exam, teacher, client_for):
    running = baker.make(ScanUpload, exam=exam, original_name="a.pdf", sha256="e" * 64, status=ScanUpload.Status.QUEUED)
    finished = baker.make(ScanUpload, exam=exam, original_name="b.pdf", sha256="f" * 64, status=ScanUpload.Status.DONE)

    text = client_for(teacher).get(exam.get_absolute_url()).content.decode()

    assert f'hx-get="{reverse("upload_progress", args=[exam.pk, running.pk])}"' in text
    assert reverse("upload_progress", args=[exam.pk, finished.pk]) not in text
    assert 'hx-trigger="uploadFinished from:body"' in text


def test_progress_of_an_upload_of_another_exam_is_not_found(exam, teacher, client_for):
    other_exam = baker.make(Exam, owner=teacher, department=baker.make(Department, name="Maths"))
    upload = baker.make(ScanUpload, exam=other_exam, original_name="x.pdf", sha256="9" * 64)

    response = client_for(teacher, htmx=True).get(reverse("upload_progress", args=[exam.pk, upload.pk]))

    assert response.status_code == 404


def test_the_edit_form_shows_the_exam_date_in_the_only_format_a_date_input_takes(exam, teacher, client_for):
    exam.date = datetime.date(2027, 1, 15)
    exam.save()

    text = client_for(teacher).get(reverse("exam_edit", args=[exam.pk])).content.decode()

    # A browser shows an <input type="date"> with any other value (such as 15/01/2027) as empty,
    # and saving the form then wipes the date.
    assert re.search(r'<input type="date" name="date" value="2027-01-15"', text)


# ---------------------------------------------------------------- what's next


def _next_steps(client, exam) -> list[str]:
    page = client.get(reverse("exam_detail", args=[exam.pk])).content.decode()
    panel = page[page.index('id="next"'):page.index("</section>", page.index('id="next"'))]
    return [html.unescape(text) for text in re.findall(r'href="[^"]*">([^<]+)</a>', panel)]


def test_a_new_exam_says_what_to_do_first_in_the_workflows_order(exam, teacher, client_for):
    steps = _next_steps(client_for(teacher), exam)

    assert steps[:5] == [
        "Import the class roster (ID, NAME, CLASS, EMAIL)",
        "Import the answer key (QUESTION, ANSWER, MAX_SCORE)",
        "Upload the blank exam (PDF)",
        "Draw the answer boxes, or accept the suggested ones",
        "Upload the scanned scripts",
    ]


def test_while_scans_are_split_the_next_step_follows_them_instead_of_asking_for_them_again(exam, teacher, client_for):
    baker.make(ScanUpload, exam=exam, original_name="scans.pdf", status=ScanUpload.Status.QUEUED)

    assert "Follow the scans being split into scripts" in _next_steps(client_for(teacher), exam)
    assert "Upload the scanned scripts" not in _next_steps(client_for(teacher), exam)


def test_once_scripts_are_read_the_next_steps_are_identities_then_grading(exam, teacher, client_for):
    from annotations.models import AnswerBox
    from grader.models import Question, Script, Student, TemplatePage
    from grader.reading.models import Answer

    baker.make(Student, exam=exam, student_id="S1", name="Ada Lovelace")
    question = baker.make(Question, exam=exam, label="Q1")
    baker.make(TemplatePage, exam=exam, index=0)
    baker.make(AnswerBox, exam=exam, label="Q1", question=question, page=0, x1=1, y1=1, x2=50, y2=50)
    script = baker.make(Script, exam=exam, number=1)
    baker.make(Answer, script=script, question=question)

    assert _next_steps(client_for(teacher), exam) == [
        "Say whose 1 script is (identity screen)",
        "Grade: 1 answer without your score yet",
    ]
    # Grading opens on the first question with answers left, where the keys work.
    page = client_for(teacher).get(reverse("exam_detail", args=[exam.pk])).content.decode()
    assert f'href="{reverse("grading_question", args=[exam.pk, question.pk])}">Grade: 1 answer' in page


def test_a_department_head_is_pointed_at_the_results_not_at_grading(exam, head, client_for):
    page = client_for(head).get(reverse("exam_detail", args=[exam.pk])).content.decode()

    assert _next_steps(client_for(head), exam) == ["Download the sample report and results"]
    assert f'class="button primary" href="{reverse("outputs", args=[exam.pk])}"' in page


def test_the_new_exam_form_keeps_the_scoring_defaults_apart_with_an_explanation(teacher, client_for):
    page = client_for(teacher).get(reverse("exam_create")).content.decode()

    start = page.index('<fieldset class="scoring-defaults">')
    scoring = page[start:page.index("</fieldset>", start)]
    assert "Scoring defaults" in scoring and "suggested full marks" in scoring
    assert 'name="default_min_similarity"' in scoring and 'name="default_granularity"' in scoring
    assert page.count('name="default_min_similarity"') == 1


def test_the_login_page_says_what_markdesk_is(client):
    page = client.get(reverse("login")).content.decode()

    assert "grade scanned, handwritten answer sheets" in page

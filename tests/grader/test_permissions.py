"""Who may see and change which exam, on every exam URL; the exam list; /healthz; the Django admin."""

from __future__ import annotations

import io
import re
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.contrib import admin
from django.core.files.base import ContentFile
from django.urls import URLPattern, reverse
from model_bakery import baker
from PIL import Image

from grader import urls as grader_urls
from grader.scans import urls as scans_urls
from grader.models import Department, Exam, Question, ScanPage, ScanUpload, Script, Student, TemplatePage, User
from tests.conftest import layout_page, pdf_upload, xlsx_upload

SMALL_PAGE = (310, 438)  # an A4 shape, small so that uploads in these tests are quick


def image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    layout_page(1, size=SMALL_PAGE).save(buffer, format=fmt)
    return buffer.getvalue()


def scan_page(**fields) -> ScanPage:
    page = ScanPage(ink_fraction=0.1, **fields)
    page.image.save(f"u{page.upload_id}-p{page.source_index + 1}.jpg", ContentFile(image_bytes("JPEG")), save=True)
    return page


@pytest.fixture
def world(exam, teacher):
    """The exam with one of everything an exam URL can point at."""
    student = baker.make(Student, exam=exam, student_id="S1", name="Amira Haddad")
    question = baker.make(Question, exam=exam, label="Q1", answer="Na", order=1, max_score=Decimal("1"))
    template_page = TemplatePage(exam=exam, index=0)
    template_page.image.save("page-1.png", ContentFile(image_bytes("PNG")), save=True)
    upload = baker.make(
        ScanUpload,
        exam=exam,
        original_name="scans.pdf",
        sha256="a" * 64,
        kind="pdf",
        status=ScanUpload.Status.DONE,
        pages_total=2,
        pages_done=2,
        uploaded_by=teacher,
    )
    failed_upload = baker.make(ScanUpload, exam=exam, original_name="broken.pdf", sha256="b" * 64, kind="pdf",
                               status=ScanUpload.Status.FAILED, error="Processing failed", uploaded_by=teacher)
    script = baker.make(Script, exam=exam, number=1, student=student)
    page = scan_page(exam=exam, upload=upload, source_index=0, script=script, position=0)
    tray_page = scan_page(exam=exam, upload=upload, source_index=1, flag="Left over: not enough pages for a whole script.")
    empty_script = baker.make(Script, exam=exam, number=2)
    return SimpleNamespace(
        exam=exam,
        student=student,
        question=question,
        template_page=template_page,
        upload=upload,
        failed_upload=failed_upload,
        script=script,
        page=page,
        tray_page=tray_page,
        empty_script=empty_script,
    )


def url_for(name: str, w) -> str:
    args = {
        "exam_detail": [w.exam.pk],
        "exam_edit": [w.exam.pk],
        "roster": [w.exam.pk],
        "roster_import": [w.exam.pk],
        "student_edit": [w.exam.pk, w.student.pk],
        "answer_key": [w.exam.pk],
        "answer_key_import": [w.exam.pk],
        "question_edit": [w.exam.pk, w.question.pk],
        "template_upload": [w.exam.pk],
        "template_page_image": [w.exam.pk, w.template_page.index],
        "scans_upload": [w.exam.pk],
        "upload_progress": [w.exam.pk, w.upload.pk],
        "upload_restart": [w.exam.pk, w.failed_upload.pk],
        "upload_cancel": [w.exam.pk, w.failed_upload.pk],
        "page_image": [w.exam.pk, w.page.pk],
        "page_action": [w.exam.pk, w.page.pk, "remove"],
        "script_new": [w.exam.pk],
        "script_detail": [w.exam.pk, w.script.number],
        "script_delete": [w.exam.pk, w.empty_script.number],
        "script_comment": [w.exam.pk, w.script.number],
    }[name]
    return reverse(name, args=args)


def post_data(name: str, w) -> dict:
    """A POST that would really change the exam if it were allowed."""
    return {
        "exam_edit": lambda: {
            "title": "Renamed exam",
            "subject": "Physics",
            "date": "",
            "department": w.exam.department_id or "",
            "classes": "",
            "pages_per_script": "3",
            "drop_blank_pages": "on",
            "co_markers": list(w.exam.co_markers.values_list("pk", flat=True)),
        },
        "roster": lambda: {"student_id": "S99", "name": "New Student", "class_name": "", "email": ""},
        "roster_import": lambda: {
            "file": xlsx_upload([["ID", "NAME", "CLASS", "EMAIL"], ["S98", "Imported Student", "9A", ""]])
        },
        "student_edit": lambda: {"delete": "1"},
        "answer_key": lambda: {"label": "Q99", "answer": "x", "accept_text": "", "max_score": "1"},
        "answer_key_import": lambda: {"file": xlsx_upload([["QUESTION", "ANSWER", "MAX_SCORE"], ["Q98", "x", 1]])},
        "question_edit": lambda: {"delete": "1"},
        "template_upload": lambda: {"file": pdf_upload([layout_page(1, size=SMALL_PAGE)], name="blank.pdf")},
        "scans_upload": lambda: {"files": pdf_upload([layout_page(1, size=SMALL_PAGE)], name="new-scans.pdf")},
        "upload_restart": lambda: {},
        "upload_cancel": lambda: {},
        "page_action": lambda: {},
        "script_new": lambda: {},
        "script_delete": lambda: {},
        "script_comment": lambda: {"comment": "Well done"},
    }[name]()


def snapshot(exam: Exam) -> dict:
    """Everything the requests above could change."""
    exam = Exam.objects.get(pk=exam.pk)
    return {
        "exam": (exam.title, exam.subject, exam.pages_per_script, exam.template_pdf.name),
        "students": sorted(exam.students.values_list("student_id", "name")),
        "questions": sorted(exam.questions.values_list("label", "answer")),
        "template": sorted(exam.template_pages.values_list("index", "image")),
        "uploads": sorted(exam.uploads.values_list("original_name", "status")),
        "scripts": sorted(exam.scripts.values_list("number", "comment")),
        "pages": sorted(exam.pages.values_list("pk", "script_id", "discarded")),
    }


def read_status(name: str) -> int:
    """A read's success status: the progress of a finished upload tells htmx to stop polling (286)."""
    return 286 if name == "upload_progress" else 200


def send(client, method: str, name: str, w):
    url = url_for(name, w)
    return client.get(url) if method == "get" else client.post(url, post_data(name, w))


READS = [
    ("exam_detail", "get"),
    ("roster", "get"),
    ("answer_key", "get"),
    ("template_page_image", "get"),
    ("upload_progress", "get"),
    ("page_image", "get"),
    ("script_detail", "get"),
]
CHANGE_FORMS = [("exam_edit", "get"), ("student_edit", "get"), ("question_edit", "get")]
CHANGES = [
    ("exam_edit", "post"),
    ("roster", "post"),
    ("roster_import", "post"),
    ("student_edit", "post"),
    ("answer_key", "post"),
    ("answer_key_import", "post"),
    ("question_edit", "post"),
    ("template_upload", "post"),
    ("scans_upload", "post"),
    ("upload_restart", "post"),
    ("upload_cancel", "post"),
    ("page_action", "post"),
    ("script_new", "post"),
    ("script_delete", "post"),
    ("script_comment", "post"),
]
EVERY_REQUEST = READS + CHANGE_FORMS + CHANGES


def ids(requests) -> list[str]:
    return [f"{method.upper()} {name}" for name, method in requests]


def test_these_tests_cover_every_exam_url():
    exam_urls = {
        pattern.name
        for pattern in [*grader_urls.urlpatterns, *scans_urls.urlpatterns]
        if isinstance(pattern, URLPattern) and "exam_id" in str(pattern.pattern)
    }

    assert exam_urls == {name for name, _ in EVERY_REQUEST}


# ---------------------------------------------------------------- people who may not see the exam


@pytest.mark.parametrize(("name", "method"), EVERY_REQUEST, ids=ids(EVERY_REQUEST))
def test_another_teacher_gets_404_and_changes_nothing(world, other_teacher, client_for, name, method):
    before = snapshot(world.exam)

    response = send(client_for(other_teacher), method, name, world)

    assert response.status_code == 404
    assert snapshot(world.exam) == before


@pytest.mark.parametrize(("name", "method"), EVERY_REQUEST, ids=ids(EVERY_REQUEST))
def test_a_head_of_another_department_gets_404(world, client_for, name, method):
    other_head = baker.make(User, role=User.Role.HEAD, department=baker.make(Department, name="Languages"))
    before = snapshot(world.exam)

    response = send(client_for(other_head), method, name, world)

    assert response.status_code == 404
    assert snapshot(world.exam) == before


@pytest.mark.parametrize(("name", "method"), EVERY_REQUEST, ids=ids(EVERY_REQUEST))
def test_anonymous_users_are_sent_to_log_in(world, client, name, method):
    before = snapshot(world.exam)
    url = url_for(name, world)

    response = send(client, method, name, world)

    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={url}"
    assert snapshot(world.exam) == before


def test_another_teacher_does_not_learn_whether_an_exam_exists(world, other_teacher, client_for):
    client = client_for(other_teacher)

    hidden = client.get(reverse("exam_detail", args=[world.exam.pk]))
    missing = client.get(reverse("exam_detail", args=[world.exam.pk + 1000]))

    assert hidden.status_code == missing.status_code == 404
    assert world.exam.title not in hidden.content.decode()


# ---------------------------------------------------------------- co-markers


@pytest.mark.parametrize(("name", "method"), READS + CHANGE_FORMS, ids=ids(READS + CHANGE_FORMS))
def test_a_co_marker_can_open_every_page(world, other_teacher, client_for, name, method):
    world.exam.co_markers.add(other_teacher)

    response = send(client_for(other_teacher), method, name, world)

    assert response.status_code == read_status(name)


@pytest.mark.parametrize(("name", "method"), CHANGES, ids=ids(CHANGES))
def test_a_co_marker_can_make_every_change(world, other_teacher, client_for, name, method):
    world.exam.co_markers.add(other_teacher)
    before = snapshot(world.exam)

    response = send(client_for(other_teacher), method, name, world)

    assert response.status_code == 302
    assert snapshot(world.exam) != before
    assert world.exam.co_markers.filter(pk=other_teacher.pk).exists()


def test_a_co_marker_sees_the_change_forms(world, other_teacher, client_for):
    world.exam.co_markers.add(other_teacher)

    text = client_for(other_teacher).get(reverse("exam_detail", args=[world.exam.pk])).content.decode()

    assert "Read only" not in text
    assert f'href="{reverse("exam_edit", args=[world.exam.pk])}"' in text
    assert f'action="{reverse("scans_upload", args=[world.exam.pk])}"' in text


# ---------------------------------------------------------------- the department head


@pytest.mark.parametrize(("name", "method"), READS, ids=ids(READS))
def test_the_head_of_the_exams_department_can_read_every_page_and_image(world, head, client_for, name, method):
    response = send(client_for(head), method, name, world)

    assert response.status_code == read_status(name)
    if name.endswith("_image"):
        assert response["Content-Type"] in ("image/png", "image/jpeg")
        assert Image.open(io.BytesIO(b"".join(response.streaming_content))).size == SMALL_PAGE


@pytest.mark.parametrize(("name", "method"), CHANGE_FORMS + CHANGES, ids=ids(CHANGE_FORMS + CHANGES))
def test_the_head_of_the_exams_department_gets_403_on_every_change(world, head, client_for, name, method):
    before = snapshot(world.exam)

    response = send(client_for(head), method, name, world)

    assert response.status_code == 403
    assert snapshot(world.exam) == before


@pytest.mark.parametrize("name", ["exam_detail", "roster", "answer_key", "script_detail"])
def test_the_head_sees_no_change_forms(world, head, client_for, name):
    response = send(client_for(head), "get", name, world)

    text = response.content.decode()
    forms = re.findall(r'<form method="post" action="([^"]*)"', text)
    assert forms == [reverse("logout")]  # only the log-out button
    assert "/edit/" not in text
    assert 'name="file"' not in text and 'name="files"' not in text
    if name == "exam_detail":
        assert '<span class="badge">Read only</span>' in text
        assert "Amira Haddad" in text  # the page itself is there: script 1 carries the student's name
    if name == "roster":
        assert "Amira Haddad" in text and "Add a student" not in text and "Import from Excel" not in text
    if name == "answer_key":
        assert "Add a question" not in text and "Import from Excel" not in text


def test_the_owner_sees_the_change_forms_the_head_does_not(world, teacher, client_for):
    text = client_for(teacher).get(reverse("roster", args=[world.exam.pk])).content.decode()

    assert "Add a student" in text and "Import from Excel" in text
    assert reverse("student_edit", args=[world.exam.pk, world.student.pk]) in text


# ---------------------------------------------------------------- the exam list


def listed_exam_ids(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'<td><a href="/exams/(\d+)/">', response.content.decode())]


def test_the_exam_list_shows_each_user_exactly_the_exams_they_may_see(
    department, teacher, other_teacher, head, client_for
):
    languages = baker.make(Department, name="Languages")
    linguist = baker.make(User, username="linguist", role=User.Role.TEACHER, department=languages)
    languages_head = baker.make(User, username="lhead", role=User.Role.HEAD, department=languages)
    owned = baker.make(Exam, title="Owned", owner=teacher, department=department)
    co_marked = baker.make(Exam, title="Co-marked", owner=other_teacher, department=department)
    co_marked.co_markers.add(teacher, linguist)  # two co-markers: the head must still see it once
    colleagues = baker.make(Exam, title="Colleague's", owner=other_teacher, department=department)
    french = baker.make(Exam, title="French", owner=linguist, department=languages)
    undepartmented = baker.make(Exam, title="No department", owner=linguist, department=None)

    expected = {
        teacher: [owned, co_marked],
        other_teacher: [co_marked, colleagues],
        head: [owned, co_marked, colleagues],
        linguist: [co_marked, french, undepartmented],
        languages_head: [french],
    }
    for user, exams in expected.items():
        response = client_for(user).get(reverse("exam_list"))
        assert response.status_code == 200
        shown = listed_exam_ids(response)
        assert sorted(shown) == sorted(exam.pk for exam in exams), user.username
        text = response.content.decode()
        for exam in Exam.objects.exclude(pk__in=[e.pk for e in exams]):
            assert f">{exam.title}<" not in text.replace("&#x27;", "'"), (user.username, exam.title)


def test_a_head_without_a_department_sees_no_exams(exam, client_for):
    lone_head = baker.make(User, role=User.Role.HEAD, department=None)

    response = client_for(lone_head).get(reverse("exam_list"))

    assert listed_exam_ids(response) == []
    assert "No exams yet." in response.content.decode()
    assert client_for(lone_head).get(reverse("exam_detail", args=[exam.pk])).status_code == 404


@pytest.mark.parametrize(
    "make_admin",
    [
        lambda: baker.make(User, username="admin", role=User.Role.ADMIN, department=None),
        lambda: baker.make(User, username="root", role=User.Role.TEACHER, is_superuser=True, is_staff=True),
    ],
    ids=["admin role", "superuser"],
)
def test_an_administrator_sees_and_changes_everything(world, client_for, make_admin):
    elsewhere = baker.make(Exam, title="French", owner=baker.make(User), department=baker.make(Department, name="Languages"))
    administrator = make_admin()
    client = client_for(administrator)

    assert sorted(listed_exam_ids(client.get(reverse("exam_list")))) == sorted([world.exam.pk, elsewhere.pk])
    detail = client.get(reverse("exam_detail", args=[world.exam.pk])).content.decode()
    assert "Read only" not in detail
    response = client.post(reverse("roster", args=[elsewhere.pk]), {"student_id": "S5", "name": "Eve Adams"})
    assert response.status_code == 302
    assert list(elsewhere.students.values_list("student_id", flat=True)) == ["S5"]


# ---------------------------------------------------------------- public and admin pages


def test_healthz_is_public_and_says_ok(client, db):
    response = client.get(reverse("healthz"))

    assert response.status_code == 200
    assert response.content == b"ok"
    assert response["Content-Type"].startswith("text/plain")


def test_the_spreadsheet_templates_need_a_login(client, db):
    response = client.get(reverse("spreadsheet_template", args=["roster"]))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


@pytest.fixture
def superuser(db) -> User:
    return baker.make(User, username="root", is_superuser=True, is_staff=True, is_active=True)


REGISTERED = sorted(admin.site._registry, key=lambda model: model.__name__)


@pytest.mark.parametrize("model", REGISTERED, ids=[model.__name__ for model in REGISTERED])
def test_every_admin_changelist_and_change_page_loads_for_a_superuser(world, superuser, client_for, model):
    client = client_for(superuser)
    meta = model._meta
    instance = model.objects.order_by("pk").first() or baker.make(model)  # grader models come from the world

    changelist = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
    change = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[instance.pk]))

    assert changelist.status_code == 200
    assert change.status_code == 200
    if admin.site._registry[model].search_fields:
        searched = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"), {"q": "a"})
        assert searched.status_code == 200


def test_the_admin_is_closed_to_teachers(teacher, client_for):
    response = client_for(teacher).get(reverse("admin:grader_exam_changelist"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_a_page_action_never_redirects_off_the_site(world, teacher, client_for):
    response = client_for(teacher).post(url_for("page_action", world), {"next": "//evil.example/phish"})

    assert response.status_code == 302
    assert response.url == reverse("exam_detail", args=[world.exam.pk])

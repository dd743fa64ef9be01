"""Reading screens: pipeline progress, re-reading, question settings, crops and the identity screen.

The small demo exam (3 students) is loaded through the services and read by the real EasyOCR
engine once; ``remembered_ocr`` replays its readings in later tests (and in the browser tests).
"""

from __future__ import annotations

import io
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files import File
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from annotations import selectors as box_selectors
from annotations import services as box_services
from grader import services
from grader.scans import services as scans
from grader.models import Exam, Question, ScanPage, Script
from grader.reading import selectors as reading_selectors
from grader.reading import services as reading
from grader.reading import tasks as reading_tasks
from grader.reading.models import Answer, ScriptIdentity
from grader.reading.views import IDLE_POLLS


pytestmark = pytest.mark.usefixtures("remembered_ocr")


@pytest.fixture
def demo_folder(demo_folder_for):
    return demo_folder_for(students=3, absent=0, seed=5)


def demo_load(*, exam, teacher, folder):
    """Roster, key, blank exam, boxes and scans of a demo folder, split and aligned (not read)."""
    with (folder / "roster.xlsx").open("rb") as handle:
        services.roster_import(exam=exam, file=File(handle, name="roster.xlsx"))
    with (folder / "answers.xlsx").open("rb") as handle:
        services.answer_key_import(exam=exam, file=File(handle, name="answers.xlsx"))
    with (folder / "template.pdf").open("rb") as handle:
        services.template_upload(exam=exam, file=File(handle, name="template.pdf"))
    box_services.boxes_import(exam=exam, fmt="annotations", data=(folder / "annotations.json").read_bytes(), user=teacher)
    with (folder / "scans.pdf").open("rb") as handle:
        intake = scans.scan_files_accept(exam=exam, files=[File(handle, name="scans.pdf")], user=teacher)
    scans.scan_upload_process(upload_id=intake.accepted[0].pk)
    return exam


def demo_read(exam):
    for script in exam.scripts.all():
        reading.script_read(script_id=script.pk, engines=[reading.OCR])
    reading.exam_identity_match(exam_id=exam.pk)
    return exam


@pytest.fixture
def loaded_exam(exam, teacher, demo_folder):
    return demo_load(exam=exam, teacher=teacher, folder=demo_folder)


@pytest.fixture
def read_exam(loaded_exam):
    return demo_read(loaded_exam)


def _stages(html: str) -> dict[str, tuple[int, int]]:
    found = re.findall(r'data-stage="(\w+)" data-done="(\d+)" data-total="(\d+)"', html)
    return {key: (int(done), int(total)) for key, done, total in found}


def _progress_url(exam, **params):
    url = reverse("reading_progress", args=[exam.pk])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


# ---------------------------------------------------------------- pipeline progress


def test_the_pipeline_card_counts_every_stage_of_a_read_exam(read_exam, client_for, teacher):
    response = client_for(teacher, htmx=True).get(_progress_url(read_exam))

    stages = _stages(response.content.decode())
    scripts = read_exam.scripts.count()
    placed = ScanPage.objects.filter(exam=read_exam, discarded=False, script__isnull=False)
    assert scripts == 3
    assert stages["split"] == (6, 6)
    assert stages["align"] == (placed.filter(transform__ok=True).count(), placed.count()) == (6, 6)
    assert stages["read"] == (3 * (12 + 3), 3 * (12 + 3))  # 12 question boxes and NAME, ID, CLASS
    assert stages["suggest"] == (36, 36)
    assert stages["identity"] == (read_exam.scripts.exclude(student=None).count(), 3)
    # Nothing more happens by itself: the card does not poll.
    assert response.status_code == 286
    assert 'hx-trigger="every 2s"' not in response.content.decode()


def test_the_card_lists_read_errors_with_their_messages_and_counts_flags(read_exam, client_for, teacher):
    Answer.objects.filter(script__exam=read_exam, question__label="Q2").update(read_error="Reading failed: page image damaged")
    Answer.objects.filter(script__exam=read_exam, question__label="Q3").update(flagged=True, flag_reason="Low confidence (easyocr 0.31).")

    html = client_for(teacher, htmx=True).get(_progress_url(read_exam)).content.decode()

    assert "3 answers could not be read" in html
    assert "Reading failed: page image damaged" in html
    flagged = Answer.objects.filter(script__exam=read_exam, flagged=True).count()
    assert flagged >= 3 and f"{flagged} flagged answers to check" in html
    assert "Low confidence (easyocr 0.31)." in html
    assert _stages(html)["suggest"] == (33, 33)


def test_the_card_polls_while_reading_is_under_way_and_stops_when_it_is_done(loaded_exam, client_for, teacher):
    client = client_for(teacher, htmx=True)
    first, *rest = loaded_exam.scripts.order_by("number")
    reading.script_read(script_id=first.pk, engines=[reading.OCR])

    response = client.get(_progress_url(loaded_exam))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'hx-trigger="every 2s"' in html
    assert _stages(html)["read"] == (15, 45)
    fingerprint = re.search(r"seen=([\w.-]+)", html).group(1)

    # A poll that sees no change counts up; one that sees progress starts again from 0.
    again = client.get(_progress_url(loaded_exam, idle=4, seen=fingerprint))
    assert again.status_code == 200 and "idle=5&amp;" in again.content.decode()
    for script in rest:
        reading.script_read(script_id=script.pk, engines=[reading.OCR])
    done = client.get(_progress_url(loaded_exam, idle=5, seen=fingerprint))
    assert done.status_code == 286
    assert 'hx-trigger="every 2s"' not in done.content.decode()
    assert "readingFinished" in done["HX-Trigger"]


def test_polling_gives_up_when_nothing_changes_and_a_stale_exam_does_not_start(loaded_exam, client_for, teacher):
    client = client_for(teacher, htmx=True)
    fingerprint = reading_selectors.pipeline_progress(exam=loaded_exam).fingerprint

    assert client.get(_progress_url(loaded_exam, idle=IDLE_POLLS - 2, seen=fingerprint)).status_code == 200
    stalled = client.get(_progress_url(loaded_exam, idle=IDLE_POLLS - 1, seen=fingerprint))
    assert stalled.status_code == 286
    assert "press <strong>Read all scripts</strong>" in stalled.content.decode()

    long_ago = timezone.now() - timedelta(hours=2)
    loaded_exam.scripts.update(created_at=long_ago)
    loaded_exam.uploads.update(created_at=long_ago)
    assert client.get(_progress_url(loaded_exam)).status_code == 286


def test_the_exam_page_loads_the_reading_card_and_links_the_identity_screen(loaded_exam, client_for, teacher):
    html = client_for(teacher).get(loaded_exam.get_absolute_url()).content.decode()

    assert f'hx-get="{reverse("reading_progress", args=[loaded_exam.pk])}" hx-trigger="load"' in html
    assert reverse("identity", args=[loaded_exam.pk]) in html
    assert 'hx-trigger="readingFinished from:body" hx-select="#exam-live" hx-target="#exam-live"' in html


def test_read_all_scripts_queues_every_script_and_reads_them(
    loaded_exam, client_for, teacher, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(teacher, htmx=True).post(reverse("reading_read_all", args=[loaded_exam.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Reading 3 scripts again" in html
    assert _stages(html)["read"] == (0, 45)  # rendered before the queued reads ran
    assert Answer.objects.filter(script__exam=loaded_exam, read_at__isnull=False).count() == 36
    # The last script's task matched the students once every identity box was read.
    assert ScriptIdentity.objects.filter(script__exam=loaded_exam).exclude(candidates=[]).count() == 3


def test_buttons_queue_reading_tasks(loaded_exam, client_for, teacher, monkeypatch, django_capture_on_commit_callbacks):
    queued, boxes_queued = [], []
    monkeypatch.setattr(reading_tasks.script_read_task, "delay", queued.append)
    monkeypatch.setattr(reading_tasks.script_box_read_task, "delay", lambda *args: boxes_queued.append(args))
    client = client_for(teacher)
    script = loaded_exam.scripts.order_by("number").last()
    question = loaded_exam.questions.get(label="Q4")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("script_read_again", args=[loaded_exam.pk, script.number]))
    assert response.status_code == 302 and response.url == script.get_absolute_url()
    assert queued == [script.pk]

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("question_read_again", args=[loaded_exam.pk, question.pk]))
    assert response.url == reverse("question_settings", args=[loaded_exam.pk, question.pk])
    box = loaded_exam.boxes.get(parent=None, question=question)
    assert sorted(boxes_queued) == sorted((pk, box.pk) for pk in loaded_exam.scripts.values_list("pk", flat=True))

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("reading_read_all", args=[loaded_exam.pk]))
    assert response.status_code == 302 and response.url.endswith("#reading")
    assert sorted(queued[1:]) == sorted(loaded_exam.scripts.values_list("pk", flat=True))


def test_reading_that_stopped_shows_as_stalled_and_one_button_reads_only_the_unread_scripts(
    read_exam, client_for, teacher, monkeypatch, settings, django_capture_on_commit_callbacks
):
    unread = read_exam.scripts.order_by("number").last()
    Answer.objects.filter(script=unread).update(read_at=None)
    settings.WORK_STALLED_MINUTES = 10
    quiet = timezone.now() - timedelta(minutes=11)
    Answer.objects.filter(script__exam=read_exam, read_at__isnull=False).update(read_at=quiet)
    ScriptIdentity.objects.filter(script__exam=read_exam).update(read_at=quiet)
    Script.objects.filter(exam=read_exam).update(created_at=quiet)
    read_exam.boxes.update(updated_at=quiet)
    read_exam.uploads.update(created_at=quiet)
    queued = []
    monkeypatch.setattr(reading_tasks.script_read_task, "delay", queued.append)

    card = client_for(teacher, htmx=True).get(_progress_url(read_exam)).content.decode()
    assert "Stalled" in card and "Read again the scripts not read yet" in card
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(teacher, htmx=True).post(reverse("reading_read_unread", args=[read_exam.pk]))

    assert response.status_code == 200 and "Reading 1 script with boxes not read yet." in response.content.decode()
    assert queued == [unread.pk]


def test_reading_that_is_merely_slow_is_not_stalled(read_exam, client_for, teacher, settings):
    Answer.objects.filter(script=read_exam.scripts.order_by("number").last()).update(read_at=None)
    settings.WORK_STALLED_MINUTES = 10

    card = client_for(teacher, htmx=True).get(_progress_url(read_exam)).content.decode()

    assert "Stalled" not in card


def test_reading_a_question_again_reads_only_its_box_and_keeps_teacher_scores(
    read_exam, client_for, teacher, django_capture_on_commit_callbacks
):
    question = read_exam.questions.get(label="Q4")
    scored = question.answers.first()
    Answer.objects.filter(pk=scored.pk).update(score=Decimal("0.5"))
    other_before = dict(Answer.objects.filter(script__exam=read_exam).exclude(question=question).values_list("pk", "read_at"))

    with django_capture_on_commit_callbacks(execute=True):
        client_for(teacher).post(reverse("question_read_again", args=[read_exam.pk, question.pk]))

    assert all(answer.read_at > other_before[next(iter(other_before))] for answer in question.answers.all())
    assert dict(Answer.objects.filter(script__exam=read_exam).exclude(question=question).values_list("pk", "read_at")) == other_before
    assert Answer.objects.get(pk=scored.pk).score == Decimal("0.5")


def test_match_students_again_assigns_the_scripts(read_exam, client_for, teacher):
    read_exam.scripts.update(student=None)
    ScriptIdentity.objects.filter(script__exam=read_exam).update(candidates=[], confident=False)

    response = client_for(teacher, htmx=True).post(reverse("reading_match", args=[read_exam.pk]))

    assert response.status_code == 200
    assert "Matched students again" in response.content.decode()
    assert ScriptIdentity.objects.filter(script__exam=read_exam, candidates=[]).count() == 0
    confident = ScriptIdentity.objects.filter(script__exam=read_exam, confident=True).count()
    assert read_exam.scripts.exclude(student=None).count() == confident


def test_the_script_page_shows_what_was_read(read_exam, client_for, teacher):
    script = read_exam.scripts.order_by("number").first()
    client = client_for(teacher)

    assert reverse("script_reading", args=[read_exam.pk, script.number]) in client.get(script.get_absolute_url()).content.decode()
    html = client_for(teacher, htmx=True).get(reverse("script_reading", args=[read_exam.pk, script.number])).content.decode()
    assert "Read this script again" in html
    assert html.count('class="crop"') == 12
    for answer in script.answers.all():
        assert reverse("answer_crop", args=[read_exam.pk, answer.pk]) in html


# ---------------------------------------------------------------- question settings


def _settings(client, question, **data):
    fields = {"max_score": "1", "min_similarity": "", "granularity": "", "strategy": "auto", **data}
    if fields.pop("lowest_terms", False):
        fields["lowest_terms"] = "on"
    return client.post(reverse("question_settings", args=[question.exam_id, question.pk]), fields)


def test_question_settings_show_the_strategy_auto_picks_and_the_answers(read_exam, client_for, teacher):
    question = read_exam.questions.get(label="Q7")  # key 3/4: numeric

    html = client_for(teacher).get(reverse("question_settings", args=[read_exam.pk, question.pk])).content.decode()

    assert "Auto (picks numeric for this key)" in html
    assert html.count('class="crop"') == 3
    assert "exam default 0.8" in html


def test_saving_question_settings_suggests_again_without_touching_teacher_scores(read_exam, client_for, teacher):
    question = read_exam.questions.get(label="Q5")
    scored = question.answers.filter(blank=False).first()
    Answer.objects.filter(pk=scored.pk).update(score=Decimal("0.5"))

    response = _settings(client_for(teacher), question, max_score="2", min_similarity="0", granularity="0.5")

    assert response.status_code == 302
    question.refresh_from_db()
    assert (question.max_score, question.min_similarity, question.granularity) == (Decimal("2"), 0.0, Decimal("0.5"))
    for answer in question.answers.all():
        # The teacher's 0.5 is evidence for answers that read the same, and only for those.
        expected = Decimal("0.5") if "script" in answer.suggestion_reason else Decimal("2")
        assert answer.suggested_score == (Decimal("0") if answer.blank else expected)
    assert Answer.objects.get(pk=scored.pk).score == Decimal("0.5")


def test_a_max_score_off_the_granularity_is_refused_with_a_message(read_exam, client_for, teacher):
    question = read_exam.questions.get(label="Q5")
    max_score = question.max_score
    before = list(question.answers.values_list("suggested_score", flat=True))

    response = _settings(client_for(teacher), question, max_score="1.25", granularity="0.5")

    assert response.status_code == 200
    assert "A max score of 1.25 is not a multiple of the granularity 0.5" in response.content.decode()
    question.refresh_from_db()
    assert question.max_score == max_score and question.granularity is None
    assert list(question.answers.values_list("suggested_score", flat=True)) == before
    # With the exam's default granularity (0.5) the message says so.
    response = _settings(client_for(teacher), question, max_score="0.75")
    assert "not a multiple of the exam&#x27;s default granularity 0.5" in response.content.decode()


def test_changing_the_exam_defaults_suggests_every_question_again(
    read_exam, client_for, teacher, django_capture_on_commit_callbacks
):
    data = {"title": read_exam.title, "pages_per_script": 2, "default_min_similarity": "0", "default_granularity": "0.5"}
    scored = Answer.objects.filter(script__exam=read_exam, blank=False).first()
    Answer.objects.filter(pk=scored.pk).update(score=Decimal("0"))

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(teacher).post(reverse("exam_edit", args=[read_exam.pk]), data)

    assert response.status_code == 302
    read_exam.refresh_from_db()
    assert read_exam.default_min_similarity == 0
    for answer in Answer.objects.filter(script__exam=read_exam).select_related("question"):
        assert answer.suggested_score == (Decimal("0") if answer.blank else answer.question.max_score)
    assert Answer.objects.get(pk=scored.pk).score == Decimal("0")


def test_an_exam_granularity_that_a_max_score_does_not_fit_is_refused(exam, client_for, teacher):
    Question.objects.create(exam=exam, label="Q1", answer="4", max_score=Decimal("1"))
    data = {"title": exam.title, "pages_per_script": 2, "default_min_similarity": "0.8", "default_granularity": "0.3"}

    response = client_for(teacher).post(reverse("exam_edit", args=[exam.pk]), data)

    assert response.status_code == 200
    assert "Q1 (max 1)" in response.content.decode()
    exam.refresh_from_db()
    assert exam.default_granularity == Decimal("0.5")


def test_a_new_exam_takes_the_scoring_defaults_given_on_its_form(client_for, teacher):
    data = {"title": "Mock", "pages_per_script": 2, "default_min_similarity": "0.7", "default_granularity": "1"}

    response = client_for(teacher).post(reverse("exam_create"), data)

    assert response.status_code == 302
    exam = Exam.objects.get(title="Mock")
    assert (exam.default_min_similarity, exam.default_granularity) == (0.7, Decimal("1"))


# ---------------------------------------------------------------- crops


def test_an_answer_crop_is_the_box_plus_a_margin(read_exam, client_for, teacher):
    answer = Answer.objects.filter(script__exam=read_exam, question__label="Q1").first()

    response = client_for(teacher).get(reverse("answer_crop", args=[read_exam.pk, answer.pk]))

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"].startswith("private")
    x1, y1, x2, y2 = answer.crop
    margin = reading_selectors.CROP_MARGIN
    assert Image.open(io.BytesIO(response.content)).size == (x2 - x1 + 2 * margin, y2 - y1 + 2 * margin)


def test_an_identity_crop_is_the_box_on_the_script_plus_a_margin(read_exam, client_for, teacher):
    script = read_exam.scripts.order_by("number").first()
    box = read_exam.boxes.get(label="NAME", parent=None)
    _, (x1, y1, x2, y2), _ = box_selectors.box_on_script(script=script, box=box)

    response = client_for(teacher).get(reverse("identity_crop", args=[read_exam.pk, script.number, "NAME"]))

    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    margin = reading_selectors.CROP_MARGIN
    assert Image.open(io.BytesIO(response.content)).size == (x2 - x1 + 2 * margin, y2 - y1 + 2 * margin)
    assert client_for(teacher).get(reverse("identity_crop", args=[read_exam.pk, script.number, "Q1"])).status_code == 404


def test_crops_are_missing_for_another_teacher(read_exam, client_for, other_teacher):
    answer = Answer.objects.filter(script__exam=read_exam).first()
    client = client_for(other_teacher)

    assert client.get(reverse("answer_crop", args=[read_exam.pk, answer.pk])).status_code == 404
    assert client.get(reverse("identity_crop", args=[read_exam.pk, 1, "NAME"])).status_code == 404


# ---------------------------------------------------------------- identity screen


def _unmatch(script):
    Script.objects.filter(pk=script.pk).update(student=None)
    ScriptIdentity.objects.filter(script=script).update(confident=False, confirmed_at=None, confirmed_by=None)


def _choose(client, script, value):
    return client.post(reverse("identity_choose", args=[script.exam_id, script.number]), {"student": value})


def test_the_identity_screen_lists_scripts_needing_a_teacher_first(read_exam, client_for, teacher):
    last = read_exam.scripts.order_by("number").last()
    _unmatch(last)

    html = client_for(teacher).get(reverse("identity", args=[read_exam.pk])).content.decode()

    numbers = [int(n) for n in re.findall(r'<article class="id-row[^"]*" id="script-(\d+)"', html)]
    attention = sorted(read_exam.scripts.filter(student=None).values_list("number", flat=True))
    assert last.number in attention
    assert numbers == attention + sorted(set(numbers) - set(attention)) and sorted(numbers) == [1, 2, 3]
    best = read_exam.students.get(student_id=ScriptIdentity.objects.get(script=last).candidates[0]["student"])
    assert best.name in html
    assert reverse("identity_crop", args=[read_exam.pk, last.number, "NAME"]) in html
    absent = read_exam.students.filter(scripts__isnull=True).count()
    assert absent >= 1 and f"On the roster without a script ({absent})" in html
    assert "Anonymous grading" not in html


def test_a_teacher_confirms_the_best_candidate(read_exam, client_for, teacher):
    script = read_exam.scripts.order_by("number").first()
    _unmatch(script)
    best = read_exam.students.get(student_id=ScriptIdentity.objects.get(script=script).candidates[0]["student"])

    response = _choose(client_for(teacher, htmx=True), script, best.pk)

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<article class="id-row state-confirmed saved"')
    assert f"Saved: script {script.number} is {best.name}" in html
    assert "identitySaved" in response["HX-Trigger"]
    assert '<p class="meta" id="identity-summary" hx-swap-oob="true">' in html  # the counts follow the choice
    assert 'id="identity-lists" hx-swap-oob="true"' in html
    script.refresh_from_db()
    assert script.student == best and script.identity.confirmed_by == teacher


def test_picking_another_student_moves_them_from_an_unconfirmed_script(read_exam, client_for, teacher):
    first, second = read_exam.scripts.order_by("number")[:2]
    Script.objects.filter(pk=second.pk).update(student=read_exam.students.order_by("student_id").first())
    student = read_exam.students.order_by("student_id").first()

    response = _choose(client_for(teacher, htmx=True), first, student.pk)

    assert f'"released": {second.number}' in response["HX-Trigger"]
    first.refresh_from_db(), second.refresh_from_db()
    assert first.student == student and second.student is None


def test_not_on_the_roster_is_a_confirmed_choice(read_exam, client_for, teacher):
    script = read_exam.scripts.order_by("number").first()

    _choose(client_for(teacher, htmx=True), script, "none")
    reading.exam_identity_match(exam_id=read_exam.pk)

    script.refresh_from_db()
    assert script.student is None and script.identity.confirmed_at is not None


def test_a_student_confirmed_on_another_script_is_refused_inline(read_exam, client_for, teacher):
    first, second = read_exam.scripts.order_by("number")[:2]
    student = read_exam.students.order_by("student_id").first()
    reading.identity_confirm(script=second, student=student, user=teacher)
    first.refresh_from_db()
    before = first.student_id

    response = _choose(client_for(teacher, htmx=True), first, student.pk)

    assert response.status_code == 200
    assert f"{student.name} is already confirmed on script {second.number}." in response.content.decode()
    assert "HX-Trigger" not in response
    first.refresh_from_db()
    assert first.student_id == before

    # Without htmx the same refusal comes back as a message on the identity screen.
    client = client_for(teacher)
    plain = _choose(client, first, student.pk)
    assert plain.status_code == 302 and plain.url.endswith(f"#script-{first.number}")
    html = client.get(plain.url).content.decode()
    assert "already confirmed on script" in html


def test_a_student_of_another_exam_is_refused(read_exam, client_for, teacher, department):
    from model_bakery import baker

    from grader.models import Exam, Student

    stranger = baker.make(Student, exam=baker.make(Exam, owner=teacher, department=department), student_id="X1")
    response = _choose(client_for(teacher, htmx=True), read_exam.scripts.first(), stranger.pk)

    assert "Choose a student on this exam" in response.content.decode()


def test_anonymous_grading_still_allows_the_identity_screen_and_says_so(read_exam, client_for, teacher):
    read_exam.anonymous = True
    read_exam.save()

    response = client_for(teacher).get(reverse("identity", args=[read_exam.pk]))

    assert response.status_code == 200
    assert "Anonymous grading is on." in response.content.decode()


# ---------------------------------------------------------------- permissions


def test_another_teacher_sees_none_of_it(read_exam, client_for, other_teacher):
    client = client_for(other_teacher)
    question = read_exam.questions.first()
    script = read_exam.scripts.first()
    for url in (
        _progress_url(read_exam),
        reverse("identity", args=[read_exam.pk]),
        reverse("question_settings", args=[read_exam.pk, question.pk]),
        reverse("script_reading", args=[read_exam.pk, script.number]),
    ):
        assert client.get(url).status_code == 404, url
    for url in (
        reverse("reading_read_all", args=[read_exam.pk]),
        reverse("reading_read_unread", args=[read_exam.pk]),
        reverse("reading_match", args=[read_exam.pk]),
        reverse("script_read_again", args=[read_exam.pk, script.number]),
        reverse("question_read_again", args=[read_exam.pk, question.pk]),
        reverse("identity_choose", args=[read_exam.pk, script.number]),
        reverse("question_settings", args=[read_exam.pk, question.pk]),
    ):
        assert client.post(url, {"student": "none", "max_score": "1"}).status_code == 404, url


def test_a_department_head_reads_but_changes_nothing(read_exam, client_for, head):
    client = client_for(head)
    question = read_exam.questions.first()
    script = read_exam.scripts.first()

    identity_page = client.get(reverse("identity", args=[read_exam.pk]))
    assert identity_page.status_code == 200 and "Read only" in identity_page.content.decode()
    assert 'name="student"' not in identity_page.content.decode()
    settings_page = client.get(reverse("question_settings", args=[read_exam.pk, question.pk]))
    assert settings_page.status_code == 200 and "<form method=\"post\">" not in settings_page.content.decode()
    assert "Read all scripts" not in client_for(head, htmx=True).get(_progress_url(read_exam)).content.decode()
    for url in (
        reverse("reading_read_all", args=[read_exam.pk]),
        reverse("reading_read_unread", args=[read_exam.pk]),
        reverse("reading_match", args=[read_exam.pk]),
        reverse("script_read_again", args=[read_exam.pk, script.number]),
        reverse("question_read_again", args=[read_exam.pk, question.pk]),
        reverse("identity_choose", args=[read_exam.pk, script.number]),
        reverse("question_settings", args=[read_exam.pk, question.pk]),
    ):
        assert client.post(url, {"student": "none", "max_score": "1"}).status_code == 403, url
    assert client.get(reverse("answer_crop", args=[read_exam.pk, Answer.objects.filter(script__exam=read_exam).first().pk])).status_code == 200


def test_a_script_matched_from_the_ink_shows_its_lead_over_the_next_student(read_exam, client_for, teacher):
    last = read_exam.scripts.order_by("number").last()
    _unmatch(last)
    lead = ScriptIdentity.objects.get(script=last).candidates[0]["lead"]

    html = client_for(teacher).get(reverse("identity", args=[read_exam.pk])).content.decode()

    assert lead > 0 and f"lead {lead:.0f}" in html

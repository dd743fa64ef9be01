"""Reading a script's boxes with the real EasyOCR engine, blank detection, flags and suggested scores."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from rapidfuzz.distance import Levenshtein

from grader.folders import exam_folder_load
from grader.models import Question, ScanPage
from grader.reading import services as reading
from grader.reading.models import Answer, BoxFrames, ScriptIdentity


pytestmark = pytest.mark.usefixtures("remembered_ocr")


@pytest.fixture
def demo_folder(demo_folder_for):
    return demo_folder_for(students=3, absent=0, seed=5)


@pytest.fixture
def read_exam(exam, teacher, demo_folder):
    """The small demo exam, uploaded through the services and read by EasyOCR."""
    exam_folder_load(exam=exam, folder=demo_folder, user=teacher)
    for script in exam.scripts.all():
        reading.script_read(script_id=script.pk, engines=[reading.OCR])
    return exam


def _truth_by_script(exam, demo_folder):
    truth = json.loads((demo_folder / "truth.json").read_text())
    return {ScanPage.objects.get(exam=exam, source_index=s["scan_pages"][0]).script_id: s for s in truth["scripts"]}


def test_every_question_of_every_script_gets_an_answer_with_its_crop(read_exam):
    answers = Answer.objects.filter(script__exam=read_exam)

    assert answers.count() == 3 * 12
    assert all(answer.read_at and answer.crop and answer.page_id for answer in answers)
    assert not answers.exclude(read_error="").exists()


def test_blank_answers_are_detected_and_score_zero(read_exam, demo_folder):
    truth = _truth_by_script(read_exam, demo_folder)
    for answer in Answer.objects.filter(script__exam=read_exam).select_related("question"):
        expected = next(a for a in truth[answer.script_id]["answers"] if a["label"] == answer.question.label)
        assert answer.blank == expected["blank"], (answer, expected["text"])
        if answer.blank:
            assert answer.suggested_score == Decimal("0") and answer.text == ""


def test_easyocr_reads_the_handwriting_close_to_what_was_written(read_exam, demo_folder):
    truth = _truth_by_script(read_exam, demo_folder)
    distance = length = 0
    for answer in Answer.objects.filter(script__exam=read_exam, blank=False).select_related("question"):
        expected = next(a for a in truth[answer.script_id]["answers"] if a["label"] == answer.question.label)["text"]
        distance += Levenshtein.distance(answer.text.lower(), expected.lower())
        length += len(expected)

    assert distance / length < 0.35


def test_identity_boxes_are_read_into_the_script_identity(read_exam, demo_folder):
    truth = _truth_by_script(read_exam, demo_folder)
    identities = ScriptIdentity.objects.filter(script__exam=read_exam)

    assert identities.count() == 3
    for identity in identities:
        written = truth[identity.script_id]
        assert len(identity.id_text) == len(written["written_id"])
        assert Levenshtein.normalized_distance(identity.name_text.upper(), written["written_name"].upper()) < 0.5


def test_an_id_box_is_read_in_the_rosters_alphabet_once_and_without_a_roster_also_as_digits(
        exam, teacher, demo_folder, remembered_ocr):
    from ml.identity import RosterEntry, id_alphabet

    exam_folder_load(exam=exam, folder=demo_folder, user=teacher)
    script = exam.scripts.first()
    asked = []
    read_page = remembered_ocr.read_page

    def spy(*, page, regions, lang="en"):
        asked.extend(regions)
        return read_page(page=page, regions=regions, lang=lang)

    remembered_ocr.read_page = spy
    reading.script_read(script_id=script.pk, engines=[reading.OCR])
    roster = [RosterEntry(student_id=s.student_id, name=s.name) for s in exam.students.all()]
    id_box = exam.boxes.get(label="ID")
    assert [r.allowlist for r in asked if abs(r.index) == id_box.pk] == [id_alphabet(roster=roster)]
    assert set(ScriptIdentity.objects.get(script=script).id_text) <= set(id_alphabet(roster=roster))

    exam.students.all().delete()
    asked.clear()
    reading.script_read(script_id=script.pk, engines=[reading.OCR])
    assert sorted((r.kind, r.allowlist) for r in asked if abs(r.index) == id_box.pk) == [("digits", None), ("text", None)]
    assert ScriptIdentity.objects.get(script=script).readings["ID digits"]["easyocr"]["text"].isdigit()


def test_every_readable_answer_gets_a_similarity_and_a_suggested_score_within_its_maximum(read_exam):
    for answer in Answer.objects.filter(script__exam=read_exam).select_related("question"):
        assert 0 <= answer.similarity <= 1
        assert Decimal("0") <= answer.suggested_score <= answer.question.max_score


def test_reading_again_never_changes_a_teachers_score_or_correction(read_exam):
    answer = Answer.objects.filter(script__exam=read_exam, blank=False).first()
    Answer.objects.filter(pk=answer.pk).update(score=Decimal("0.5"), confirmed_text="teacher's reading")

    reading.script_read(script_id=answer.script_id, engines=[reading.OCR])

    answer.refresh_from_db()
    assert answer.score == Decimal("0.5")
    assert answer.text == "teacher's reading"


def test_changing_a_questions_settings_resuggests_without_touching_teacher_scores(read_exam):
    question = Question.objects.get(exam=read_exam, label="Q3")
    scored = question.answers.first()
    Answer.objects.filter(pk=scored.pk).update(score=Decimal("1"))
    question.min_similarity = 0.0
    question.save()

    reading.question_resuggest(question_id=question.pk)

    for answer in question.answers.all():
        expected = Decimal("0") if answer.blank else question.max_score
        assert answer.suggested_score == expected
    assert Answer.objects.get(pk=scored.pk).score == Decimal("1")


def test_an_engine_reading_nothing_flags_the_answer(read_exam, monkeypatch):
    class Silent:
        name = "easyocr"

        def read_page(self, *, page, regions, lang="en"):
            from ml.recognition.base import Reading

            return [Reading(index=region.index, text=None, confidence=None, engine="easyocr") for region in regions]

    monkeypatch.setitem(reading._engines, reading.OCR, Silent())
    script = read_exam.scripts.first()

    reading.script_read(script_id=script.pk, engines=[reading.OCR])

    unread = Answer.objects.filter(script=script, blank=False)
    assert unread.exists()
    assert all(answer.flagged and answer.flag_reason == "Not read by easyocr." for answer in unread)


def test_scripts_are_matched_to_their_true_students_despite_ocr_slips(read_exam, demo_folder):
    truth = _truth_by_script(read_exam, demo_folder)

    result = reading.exam_identity_match(exam_id=read_exam.pk)

    for script in read_exam.scripts.select_related("student", "identity"):
        expected = truth[script.pk]["student_id"]
        best = script.identity.candidates[0]["student"]
        assert best == expected, (script.identity.id_text, script.identity.name_text)
        if script.identity.confident:
            assert script.student.student_id == expected
        else:
            assert script.student is None
    unassigned = {match.script for match in result.matches if not match.confident}
    assert set(read_exam.scripts.filter(student=None).values_list("pk", flat=True)) == unassigned


def test_a_teacher_confirms_a_script_and_matching_again_leaves_it_alone(read_exam, teacher):
    script = read_exam.scripts.order_by("number").first()
    other_student = read_exam.students.exclude(scripts=script).order_by("student_id").last()

    reading.identity_confirm(script=script, student=other_student, user=teacher)
    reading.exam_identity_match(exam_id=read_exam.pk)

    script.refresh_from_db()
    assert script.student == other_student
    assert read_exam.scripts.filter(student=other_student).count() == 1


def test_moving_one_scripts_box_reads_only_that_answer_again(read_exam, teacher, client_for, django_capture_on_commit_callbacks):
    from django.urls import reverse

    from annotations.models import AnswerBox

    script = read_exam.scripts.order_by("number").first()
    box = AnswerBox.objects.get(exam=read_exam, label="Q3", parent=None)
    moved = Answer.objects.get(script=script, question=box.question)
    untouched = Answer.objects.get(script=script, question__label="Q4")
    x1, y1, x2, y2 = moved.crop

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(teacher).post(
            reverse("script_box_adjust", args=[read_exam.pk, script.number, box.pk]),
            {"bbox": [x1 - 30, y1, x2 + 30, y2]},
            content_type="application/json",
        )

    assert response.status_code == 200
    moved.refresh_from_db()
    assert moved.crop == [x1 - 30, y1, x2 + 30, y2]
    assert Answer.objects.get(pk=untouched.pk).read_at == untouched.read_at


class _RosterScoringEngine:
    """A VLM-like engine: reads nothing useful, but scores candidate texts (the true student's best)."""

    name = reading.VLM

    def __init__(self, truth_name: str):
        self.truth_name = truth_name

    def read_page(self, *, page, regions, lang="en"):
        from ml.recognition.base import Reading

        return [Reading(index=region.index, text="???", confidence=0.1, engine=self.name) for region in regions]

    def candidates_score(self, *, page, region, candidates, lang="en"):
        wanted = {self.truth_name, " ".join(reversed(self.truth_name.split()))}
        return [-2.0 if text in wanted else (-5.0 if text == "???" else -50.0) for text in candidates]


def test_an_engine_without_frames_scores_the_roster_and_matching_uses_it(read_exam, demo_folder, monkeypatch):
    truth = _truth_by_script(read_exam, demo_folder)
    script = read_exam.scripts.order_by("number").first()
    name = truth[script.pk]["student_name"]
    monkeypatch.setitem(reading._engines, reading.VLM, _RosterScoringEngine(name))
    name_box = read_exam.boxes.get(label="NAME", parent=None)
    # Only the VLM's evidence for this script's name: no ink frames, no readable ID.
    BoxFrames.objects.filter(script=script).delete()
    ScriptIdentity.objects.filter(script=script).update(id_text="", readings={})

    reading.script_read(script_id=script.pk, engines=[reading.VLM], box_ids=[name_box.pk])
    fits = ScriptIdentity.objects.get(script=script).readings["fits"]["NAME"]
    reading.exam_identity_match(exam_id=read_exam.pk)

    assert max(fits, key=lambda student: fits[student][0]) == truth[script.pk]["student_id"]
    script.refresh_from_db()
    assert script.student.student_id == truth[script.pk]["student_id"]


class _BatchingEngine:
    """A VLM-like engine that reads pages in batches, recording each batch, and echoes each box's id."""

    name = reading.VLM

    def __init__(self, *, fail_batches: bool = False):
        self.batches, self.single, self.fail_batches = [], 0, fail_batches

    def _read(self, regions):
        from ml.recognition.base import Reading

        return [Reading(index=region.index, text=f"box {region.index}", confidence=0.9, engine=self.name)
                for region in regions]

    def read_page(self, *, page, regions, lang="en"):
        self.single += 1
        return self._read(regions)

    def read_pages(self, *, pages, lang="en"):
        self.batches.append([len(regions) for _, regions in pages])
        if self.fail_batches:
            raise RuntimeError("CUDA out of memory")
        return [self._read(regions) for _, regions in pages]


def test_a_batching_engine_reads_the_pages_of_several_scripts_in_one_call_like_lengths_together(
        read_exam, monkeypatch):
    engine = _BatchingEngine()
    monkeypatch.setitem(reading._engines, reading.VLM, engine)
    script_ids = list(read_exam.scripts.order_by("number").values_list("pk", flat=True))

    reading.scripts_read(script_ids=script_ids, engines=[reading.VLM])

    (batch,) = engine.batches
    pages_with_ink = {(a.script_id, a.page_id) for a in Answer.objects.filter(script__exam=read_exam, blank=False)}
    assert len(batch) == len(pages_with_ink) > len(script_ids)
    assert batch == sorted(batch) and engine.single == 0
    written = Answer.objects.filter(script__exam=read_exam, blank=False).select_related("question")
    for answer in written:
        box = read_exam.boxes.get(question=answer.question, parent=None)
        assert answer.readings["vlm"]["text"] == f"box {box.pk}"
        assert answer.readings["easyocr"]["text"] is not None  # the other engine's reading is kept


def test_a_failed_batch_is_read_again_page_by_page(read_exam, monkeypatch):
    engine = _BatchingEngine(fail_batches=True)
    monkeypatch.setitem(reading._engines, reading.VLM, engine)
    script_ids = list(read_exam.scripts.values_list("pk", flat=True))

    reading.scripts_read(script_ids=script_ids, engines=[reading.VLM])

    assert len(engine.batches) == 1 and engine.single == len(
        {(a.script_id, a.page_id) for a in Answer.objects.filter(script__exam=read_exam, blank=False)})
    assert not Answer.objects.filter(script__exam=read_exam).exclude(read_error="").exists()
    assert not Answer.objects.filter(script__exam=read_exam, blank=False, readings__vlm__isnull=True).exists()


def test_with_a_vlm_configured_reading_is_queued_per_script_on_ocr_and_in_chunks_of_scripts_on_vlm(
        exam, settings, monkeypatch, django_capture_on_commit_callbacks):
    from model_bakery import baker

    from grader.reading import tasks

    settings.VLM_MODEL_PATH, settings.VLM_SCRIPTS_PER_TASK = "/models/qwen", 2
    scripts = [baker.make("grader.Script", exam=exam, number=n) for n in range(1, 6)]
    ocr, vlm = [], []
    monkeypatch.setattr(tasks.script_read_task, "delay", ocr.append)
    monkeypatch.setattr(tasks.scripts_read_vlm_task, "delay", lambda ids, box_id: vlm.append((ids, box_id)))

    with django_capture_on_commit_callbacks(execute=True):
        reading.exam_read_enqueue(exam=exam)

    ids = [script.pk for script in sorted(scripts, key=lambda s: s.pk)]
    assert sorted(ocr) == ids
    assert sorted(script for chunk, _ in vlm for script in chunk) == ids
    assert [len(chunk) for chunk, _ in vlm] == [2, 2, 1] and {box for _, box in vlm} == {None}

"""A scorer learns the teacher's marking: it is judged by cross-validation against the suggestions
without it, offered only on the questions where it agrees with the teacher more often, and then
suggests there with its reason; a teacher's score is never touched."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.urls import reverse

from grader.folders import exam_folder_load
from grader.grading import services as grading
from grader.learning import scorers, services
from grader.learning.models import LearningJob
from grader.learning.selectors import answers_labelled_count
from grader.models import ScanPage
from grader.reading import services as reading
from grader.reading.models import Answer
from ml.demo_data import teacher_file
from ml.scorer import ScorerConfig
from ml.similarity import text_normalise

pytestmark = pytest.mark.usefixtures("remembered_ocr")


@pytest.fixture
def demo_folder(demo_folder_for):
    return demo_folder_for(students=5, absent=0, seed=5)


@pytest.fixture
def marks(demo_folder):
    """(question label, normalised text) -> the demo teacher's share of the marks."""
    truth = json.loads((demo_folder / "truth.json").read_text())
    teacher = teacher_file(truth=truth)
    maxima = {}
    for script in truth["scripts"]:
        for answer in script["answers"]:
            maxima[answer["label"]] = max(maxima.get(answer["label"], 0), 1)
    found = {}
    for script in teacher["scripts"]:
        for label, answer in script["answers"].items():
            found[(label, text_normalise(answer["text"]))] = 1.0 if answer["score"] else 0.0
    return found


@pytest.fixture
def scored_exam(exam, teacher, demo_folder):
    """The demo read, and every written answer of the first four scripts scored as the demo teacher would."""
    exam_folder_load(exam=exam, folder=demo_folder, user=teacher)
    for script in exam.scripts.all():
        reading.script_read(script_id=script.pk, engines=[reading.OCR])
    teacher_scores = teacher_file(truth=json.loads((demo_folder / "truth.json").read_text()))
    for written in teacher_scores["scripts"][:4]:
        script = ScanPage.objects.get(exam=exam, source_index=written["pages"][0]).script
        for answer in script.answers.select_related("question").filter(blank=False):
            grading.score_set(answer_id=answer.pk, score=Decimal(written["answers"][answer.question.label]["score"]),
                              expected_version=answer.version, user=teacher)
    return exam


class Oracle:
    """A scorer that knows the demo teacher's marking by heart (what a perfectly learned scorer would say)."""

    def __init__(self, marks):
        self.marks = marks

    def shares(self, *, question, key, texts):
        return [(self.marks.get((question, text_normalise(text)), 0.0), 0.99) for text in texts]


@pytest.fixture
def oracle_scorer(monkeypatch, marks):
    """Training writes a scorer card; loading gives the oracle."""

    def train(*, records, out, config, val=(), progress=False):
        out.mkdir(parents=True, exist_ok=True)
        (out / "scorer.json").write_text(json.dumps({"answers": len(records)}))

    monkeypatch.setattr(services, "scorer_train", train)
    monkeypatch.setattr(services, "scorer_load", lambda *, path, device=None: Oracle(marks))
    monkeypatch.setattr(scorers, "scorer_load", lambda *, path, device=None: Oracle(marks))
    scorers._scorer_loaded.cache_clear()
    yield
    scorers._scorer_loaded.cache_clear()


def test_learning_starts_from_scores_alone_and_says_how_many_there_are(client_for, teacher, scored_exam):
    index = client_for(teacher).get(reverse("grading_index", args=[scored_exam.pk])).content.decode()
    labelled = answers_labelled_count(exam=scored_exam)
    assert labelled < services.MIN_LABELLED
    scored = Answer.objects.filter(script__exam=scored_exam, score__isnull=False).count()
    assert scored >= services.MIN_SCORED
    assert f"So far {labelled} answers with a text to learn from (20 needed) and {scored} scored answers." in index

    job = services.reader_learn_start(exam=scored_exam, user=teacher, enqueue=False)

    assert job.status == LearningJob.Status.QUEUED


@pytest.mark.usefixtures("oracle_scorer")
def test_a_scorer_that_knows_the_marking_is_offered_only_where_it_beats_the_suggestions_and_then_suggests_there(
        client_for, teacher, scored_exam, django_capture_on_commit_callbacks):
    scored_before = dict(Answer.objects.filter(script__exam=scored_exam).values_list("pk", "score"))

    with django_capture_on_commit_callbacks(execute=True):
        client_for(teacher, htmx=True).post(reverse("learning_start", args=[scored_exam.pk]))

    job = LearningJob.objects.get()
    assert job.status == LearningJob.Status.DONE and job.finished, job.error
    found = job.metrics["scorer"]
    assert found["folds"] == services.SCORER_FOLDS
    assert sum(row["answers"] for row in found["questions"].values()) == found["answers"]
    for label, row in found["questions"].items():
        assert row["with"] >= row["without"], f"the oracle agrees with the teacher at least as often on {label}"
        assert row["offered"] == (row["answers"] >= services.SCORER_MIN_ANSWERS and row["with"] > row["without"])
    offered = set(found["offered"])
    assert offered, "the suggestions missed somewhere the oracle did not (the demo has misreadings)"
    assert offered == {q.pk for q in scored_exam.questions.all() if found["questions"][q.label]["offered"]}
    assert dict(Answer.objects.filter(script__exam=scored_exam).values_list("pk", "score")) == scored_before
    learned = Answer.objects.filter(script__exam=scored_exam, suggestion_reason__startswith="learned from your marks")
    assert learned.exists()
    assert set(learned.values_list("question_id", flat=True)) <= offered
    assert not learned.filter(score__isnull=False, suggestion_reason__startswith="as ").exists()
    index = client_for(teacher).get(reverse("grading_index", args=[scored_exam.pk])).content.decode()
    assert "now suggests scores where it agreed with you more often" in index


@pytest.mark.usefixtures("oracle_scorer")
def test_a_question_the_scorer_was_not_offered_for_is_suggested_without_it(teacher, scored_exam):
    job = services.reader_learn_start(exam=scored_exam, user=teacher, enqueue=False)
    job = services.reader_learn_run(job_id=job.pk)
    offered = set(job.metrics["scorer"]["offered"])

    for question in scored_exam.questions.all():
        assert (scorers.question_scorer(question=question) is not None) == (question.pk in offered)


def test_a_real_scorer_is_trained_judged_and_reported(teacher, scored_exam, tmp_path):
    found = services.scorer_learn(exam=scored_exam, out=tmp_path / "scorer",
                                  config=ScorerConfig(epochs=2, threads=1))

    assert found["answers"] == Answer.objects.filter(script__exam=scored_exam, score__isnull=False,
                                                     blank=False).count()
    assert set(found["questions"]) == set(scored_exam.questions.values_list("label", flat=True))
    assert all(0 <= row["with"] <= row["answers"] and 0 <= row["without"] <= row["answers"]
               for row in found["questions"].values())
    assert (tmp_path / "scorer" / "scorer.json").exists() == bool(found["offered"])

"""Final results of an exam, as every output presents them.

A script's score for a question is the teacher's score, else the suggested score (finishing an exam
accepts suggestions the teacher left alone). Scores are in marks (``Decimal``). Only questions with an
answer box count: a key entry nobody drew a box for was never asked of the scripts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import QuerySet

from grader.models import Exam, Question, Script, Student
from grader.reading.models import Answer


@dataclass
class QuestionResult:
    """``source`` is "teacher", "suggested" or "" (no score at all: not read, or no key)."""

    question: Question
    answer: Answer | None
    score: Decimal | None
    source: str

    @property
    def max_score(self) -> Decimal:
        return self.question.max_score

    @property
    def blank(self) -> bool:
        return bool(self.answer and self.answer.blank and self.answer.confirmed_text is None)


@dataclass
class ScriptResult:
    script: Script
    rows: list[QuestionResult] = field(default_factory=list)

    @property
    def student(self) -> Student | None:
        return self.script.student

    @property
    def total(self) -> Decimal:
        return sum((row.score for row in self.rows if row.score is not None), Decimal(0))

    @property
    def max_total(self) -> Decimal:
        return sum((row.max_score for row in self.rows), Decimal(0))

    @property
    def percent(self) -> float:
        return float(100 * self.total / self.max_total) if self.max_total else 0.0

    @property
    def unscored(self) -> int:
        return sum(1 for row in self.rows if row.score is None)

    @property
    def title(self) -> str:
        """Who the script belongs to, for headings and file names."""
        if self.student:
            return f"{self.student.name} ({self.student.student_id})"
        return f"Script {self.script.number} (no student)"


def questions_graded(*, exam: Exam) -> QuerySet[Question]:
    return exam.questions.filter(boxes__parent=None).distinct().order_by("order", "label")


def _final(answer: Answer | None) -> tuple[Decimal | None, str]:
    if answer is None:
        return None, ""
    if answer.score is not None:
        return answer.score, "teacher"
    if answer.suggested_score is not None:
        return answer.suggested_score, "suggested"
    return None, ""


def script_results(*, exam: Exam, script_ids: Sequence[int] | None = None) -> list[ScriptResult]:
    """Every script of ``exam`` (or those in ``script_ids``) with its final scores, in script order."""
    questions = list(questions_graded(exam=exam))
    # exam too: every scored PDF reads its script's exam.
    scripts = Script.objects.filter(exam=exam).select_related("student", "exam").order_by("number")
    if script_ids is not None:
        scripts = scripts.filter(pk__in=script_ids)
    answers: dict[tuple[int, int], Answer] = {
        (a.script_id, a.question_id): a
        for a in Answer.objects.filter(script__in=scripts, question__in=questions).select_related("scored_by", "page")
    }
    results = []
    for script in scripts:
        result = ScriptResult(script=script)
        for question in questions:
            answer = answers.get((script.pk, question.pk))
            score, source = _final(answer)
            result.rows.append(QuestionResult(question=question, answer=answer, score=score, source=source))
        results.append(result)
    return results


def student_results(
    *, exam: Exam, results: list[ScriptResult] | None = None
) -> list[tuple[Student, ScriptResult | None]]:
    """Every roster student, in roster order, with their script's result (None: absent).

    ``results``: the exam's ``script_results`` when the caller has them already. A student several
    scripts claim gets the first by script number (completeness makes teachers settle such claims
    before an exam is finished).
    """
    by_student: dict[int, ScriptResult] = {}
    for result in script_results(exam=exam) if results is None else results:
        if result.script.student_id is not None:
            by_student.setdefault(result.script.student_id, result)
    return [(student, by_student.get(student.pk)) for student in exam.students.order_by("class_name", "name")]

"""A replayed teacher: grade an exam from a file of the teacher's scores, with the grading form's keys,
to measure how much work the machine's help leaves (``grade_folder --replay``, ``bench/replay.py``).

``TEACHER.json``::

    {"scripts": [{"pages": [0, 1], "student_id": "S1004",
                  "answers": {"Q1": {"score": 1, "text": "Na"}, "Q2": {"score": 0, "text": "oxygen"}}}]}

``pages`` name a script as ``results.json`` does (0-based pages of the scanned PDF, in template order);
``score`` is the teacher's mark and ``text`` what the teacher would confirm was written ("" for a blank
box). ``student_id`` is optional and only reported.

The teacher grades question by question, in the key's order, as the form offers it: first the groups
of answers that read the same (a group whose members the teacher scores alike is scored at once;
one the teacher would split is passed with Tab), then every remaining row in script order. On a box,
Enter accepts the suggestion (1 key); otherwise the teacher types the score and Enter
(``len("0.5") + 1`` keys). Every save goes through the grading services, so suggestions are made again
after each one exactly as in the app, and the next row sees them.

``replay.json``::

    {"keystrokes": n, "answers": m, "keystrokes_per_answer": x,
     "agreement_before_teacher": a,     # suggestion == teacher's score, before any save
     "agreement_when_reached": b,       # the same, for the suggestion the teacher met on each box
     "cer": c, "cer_read": d,           # character error rate of non-blank answers before the replay:
                                        # the text used (fits included), and the engine's own reading
     "groups": {"scored": g, "passed": p},
     "texts_corrected": t,              # with correct_texts: texts the teacher typed (not in keystrokes)
     "per_question": {"Q1": {"answers": .., "keystrokes": .., "agreement_before_teacher": ..,
                             "agreement_when_reached": ..}}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from rapidfuzz.distance import Levenshtein

from grader.models import Exam, User
from grader.reading.models import Answer
from grader.reading.services import reading_best
from grader.selectors import script_scan_pages
from ml.scoring import marks_text

from . import services
from .selectors import answer_groups_for_question

MAX_REPLAY_BYTES = 20 << 20


class ReplayRejected(ValueError):
    """The teacher file cannot be replayed on this exam; the message says why."""


@dataclass(frozen=True)
class TeacherAnswer:
    score: Decimal
    text: str


def teacher_file_parse(*, data: bytes) -> list[dict]:
    """The scripts of a ``TEACHER.json`` (see the module docstring), checked; ReplayRejected otherwise."""
    if len(data) > MAX_REPLAY_BYTES:
        raise ReplayRejected(f"The teacher file is larger than {MAX_REPLAY_BYTES >> 20} MB.")
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as error:
        raise ReplayRejected(f"The teacher file is not JSON: {error}") from error
    scripts = document.get("scripts") if isinstance(document, dict) else None
    if not isinstance(scripts, list):
        raise ReplayRejected('The teacher file must be {"scripts": [...]}.')
    for number, script in enumerate(scripts, start=1):
        pages, answers = (script.get("pages"), script.get("answers")) if isinstance(script, dict) else (None, None)
        if not (isinstance(pages, list) and pages and all(isinstance(p, int) and not isinstance(p, bool) for p in pages)):
            raise ReplayRejected(f"Script {number} of the teacher file has no list of page numbers.")
        if not isinstance(answers, dict):
            raise ReplayRejected(f"Script {number} of the teacher file has no answers object.")
        for label, answer in answers.items():
            if not isinstance(answer, dict) or "score" not in answer:
                raise ReplayRejected(f"Script {number}, {label}: each answer needs a score.")
    return scripts


def replay_run(*, exam: Exam, scripts: list[dict], user: User, correct_texts: bool = False) -> dict:
    """Replay the teacher of ``scripts`` (from :func:`teacher_file_parse`) on ``exam``; returns the
    ``replay.json`` document. Scripts are matched by their pages; ReplayRejected names any that no
    script of the exam has, and any score the question does not allow. With ``correct_texts`` the
    teacher also types the right text (``e``) wherever the text shown differs from theirs, before
    scoring the question (``texts_corrected`` counts them; their keys are not in ``keystrokes``)."""
    teacher = _teacher_answers(exam=exam, scripts=scripts)
    questions = list(exam.questions.order_by("order", "label"))
    answers = {(a.script_id, a.question_id): a for a in Answer.objects.filter(script__exam=exam)}
    by_answer = {answers[key].pk: value for key, value in teacher.items() if key in answers}
    question_of = {answers[key].pk: key[1] for key in teacher if key in answers}
    before = {answers[key].pk: answers[key].suggested_score for key in teacher if key in answers}
    texts_before = {answers[key].pk: (answers[key].text, reading_best(answers[key].readings)[0])
                    for key in teacher if key in answers}

    keystrokes, met, groups_scored, groups_passed, corrected = 0, {}, 0, 0, 0
    per_question = {}
    for question in questions:
        question_keys = 0
        if correct_texts:
            corrected += _texts_correct(question=question, teacher=by_answer, user=user)
        passed: set[str] = set()
        # Each save may suggest again and so re-read answers as another text: groups are offered afresh.
        while group := _next_group(question_id=question.pk, teacher=by_answer, passed=passed):
            todo = [m for m in group.members if m.score is None]
            scores = {by_answer[m.pk].score for m in todo if m.pk in by_answer}
            if len(scores) > 1 or any(m.pk not in by_answer for m in todo):
                question_keys += 1  # Tab past a group the teacher would split
                groups_passed += 1
                passed.add(group.key)
                continue
            score = scores.pop()
            suggestion = next((m.suggested_score for m in group.members if m.suggested_score is not None), None)
            question_keys += _keys(score=score, suggestion=suggestion)
            for member in todo:
                met[member.pk] = suggestion
            services.group_score_set(question_id=question.pk, group_key=group.key, score=score, user=user,
                                     expected_versions={m.pk: m.version for m in todo})
            groups_scored += 1
        rows = Answer.objects.filter(question=question, score__isnull=True, pk__in=list(by_answer)).order_by("script__number")
        for row in rows.values_list("pk", flat=True):
            answer = Answer.objects.get(pk=row)  # fresh: earlier saves may have changed its suggestion
            score = by_answer[row].score
            met[row] = answer.suggested_score
            question_keys += _keys(score=score, suggestion=answer.suggested_score)
            services.score_set(answer_id=row, score=score, expected_version=answer.version, user=user)
        ids = [pk for pk in by_answer if question_of[pk] == question.pk]
        per_question[question.label] = {
            "answers": len(ids),
            "keystrokes": question_keys,
            "agreement_before_teacher": _agreement(ids, before, by_answer),
            "agreement_when_reached": _agreement(ids, met, by_answer),
        }
        keystrokes += question_keys

    graded = list(by_answer)
    return {
        "keystrokes": keystrokes,
        "answers": len(graded),
        "keystrokes_per_answer": round(keystrokes / len(graded), 4) if graded else None,
        "agreement_before_teacher": _agreement(graded, before, by_answer),
        "agreement_when_reached": _agreement(graded, met, by_answer),
        "cer": _cer([(texts_before[pk][0], by_answer[pk].text) for pk in graded]),
        "cer_read": _cer([(texts_before[pk][1], by_answer[pk].text) for pk in graded]),
        "groups": {"scored": groups_scored, "passed": groups_passed},
        "texts_corrected": corrected,
        "per_question": per_question,
    }


def replay_measure(*, exam: Exam, scripts: list[dict]) -> dict:
    """How the machine's help stands against the teacher of ``scripts`` now, without grading:
    ``{"answers", "agreement", "cer", "cer_read"}`` (suggested score equal to the teacher's; CER of
    the text used and of the engine's own reading, over the answers the teacher says are not blank)."""
    teacher = _teacher_answers(exam=exam, scripts=scripts)
    answers = {(a.script_id, a.question_id): a for a in Answer.objects.filter(script__exam=exam)}
    pairs = [(answers[key], value) for key, value in teacher.items() if key in answers]
    return {
        "answers": len(pairs),
        "agreement": round(sum(a.suggested_score == t.score for a, t in pairs) / len(pairs), 4) if pairs else None,
        "cer": _cer([(a.text, t.text) for a, t in pairs]),
        "cer_read": _cer([(reading_best(a.readings)[0], t.text) for a, t in pairs]),
    }


def _texts_correct(*, question, teacher: dict, user: User) -> int:
    """The teacher types their text where the one shown differs; returns how many were corrected."""
    corrected = 0
    for answer in Answer.objects.filter(question=question, pk__in=list(teacher)).order_by("script__number"):
        wanted = teacher[answer.pk].text
        if wanted and " ".join(answer.text.split()).casefold() != " ".join(wanted.split()).casefold():
            services.text_confirm(answer_id=answer.pk, text=wanted, expected_version=answer.version, user=user)
            corrected += 1
    return corrected


def _teacher_answers(*, exam: Exam, scripts: list[dict]) -> dict[tuple[int, int], TeacherAnswer]:
    by_pages = {script_scan_pages(script=script): script for script in exam.scripts.all()}
    questions = {question.label: question for question in exam.questions.all()}
    found: dict[tuple[int, int], TeacherAnswer] = {}
    problems = []
    for number, written in enumerate(scripts, start=1):
        script = by_pages.get(tuple(written["pages"]))
        if script is None:
            problems.append(f"script {number}: no script has pages {written['pages']}")
            continue
        for label, answer in written["answers"].items():
            question = questions.get(label)
            if question is None:
                problems.append(f"script {number}: the exam has no question {label}")
                continue
            try:
                score = Decimal(str(answer["score"]))
            except (InvalidOperation, ValueError):
                problems.append(f"script {number}, {label}: {answer['score']!r} is not a score")
                continue
            try:
                services.score_check(question=question, score=score)
            except services.ScoreRefused as refused:
                problems.append(f"script {number}, {label}: {refused}")
                continue
            found[(script.pk, question.pk)] = TeacherAnswer(score, str(answer.get("text") or ""))
    if problems:
        raise ReplayRejected("The teacher file does not fit this exam: " + "; ".join(problems[:10])
                             + (f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""))
    return found


def _next_group(*, question_id: int, teacher: dict, passed: set[str]):
    """The first group offered with two or more answers still to score, not already passed."""
    return next((group for group in answer_groups_for_question(question_id=question_id)
                 if group.key not in passed and sum(m.score is None for m in group.members) >= 2), None)


def _keys(*, score: Decimal, suggestion: Decimal | None) -> int:
    """Enter on an empty box accepts the suggestion; otherwise type the score, then Enter."""
    return 1 if suggestion is not None and suggestion == score else len(marks_text(score)) + 1


def _agreement(ids, suggestions: dict, teacher: dict) -> float | None:
    if not ids:
        return None
    return round(sum(suggestions.get(pk) == teacher[pk].score for pk in ids) / len(ids), 4)


def _cer(pairs: list[tuple[str, str]]) -> float | None:
    """Edits over the teacher's characters, case-insensitive with runs of spaces collapsed, over the
    answers the teacher says are not blank."""
    edits = characters = 0
    for read, truth in pairs:
        truth = " ".join(truth.split()).casefold()
        if not truth:
            continue
        edits += Levenshtein.distance(" ".join((read or "").split()).casefold(), truth)
        characters += len(truth)
    return round(edits / characters, 4) if characters else None


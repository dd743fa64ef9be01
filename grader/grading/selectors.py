"""Read access for grading: answer groups, an answer's history, completeness and per-question progress.

Scores are in marks (``Decimal``); similarities in [0, 1]. An answer's *effective* score is the
teacher's ``score`` when set, else the ``suggested_score``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import QuerySet
from rapidfuzz import fuzz

from grader.models import Exam, Question, Script, Student
from grader.reading.models import Answer
from grader.reading.selectors import duplicate_claims, students_absent
from grader.reading.services import question_strategy
from ml.similarity import semantic_model_load, text_normalise

from .models import AnswerChange, CompletenessWaiver, ExamStatus

SEMANTIC_THRESHOLD = 0.9


# ---------------------------------------------------------------- answer groups


@dataclass
class AnswerGroup:
    """Answers to one question that read the same, to be scored once.

    ``key`` identifies the group for ``services.group_score_set``: the normalised text (spaces
    removed) of its largest exact-text part. ``text`` is the most common written text among the
    members. ``members`` are in script order.
    """

    key: str
    text: str
    members: list[Answer]

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def score(self) -> Decimal | None:
        """The teacher score every member shares, or None when they differ or some have none."""
        scores = {member.score for member in self.members}
        return scores.pop() if len(scores) == 1 else None


def answer_group_key(text: str) -> str:
    """The exact-grouping key of an answer's text: normalised as the exact strategy compares it."""
    return text_normalise(text).replace(" ", "")


def _groupable(question_id: int) -> QuerySet[Answer]:
    """Answers that may be grouped: not blank (blank answers score 0), with text, not pulled out."""
    return (
        Answer.objects.filter(question_id=question_id, blank=False)
        .exclude(text="")
        .exclude(group_override__detached=True)
        .select_related("script", "question")
        .order_by("script__number")
    )


def _representative(members: list[Answer]) -> str:
    counts = Counter(member.text.strip() for member in members)
    return max(counts, key=lambda text: (counts[text], -next(i for i, m in enumerate(members) if m.text.strip() == text)))


def _semantic_merge(parts: list[list[Answer]], threshold: float) -> list[list[list[Answer]]]:
    """Leader clustering of exact-text parts (largest first): each part joins the first cluster whose
    leader it is at least ``threshold`` similar to, else leads a new one. Similarity is as the
    semantic strategy computes it: the larger of the embeddings' cosine and the fuzzy ratio."""
    texts = [_representative(part) for part in parts]
    embeddings = semantic_model_load().encode(
        texts, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
    )
    compact = [answer_group_key(text) for text in texts]
    clusters: list[list[int]] = []
    for index in range(len(parts)):
        for cluster in clusters:
            leader = cluster[0]
            cosine = float(embeddings[index] @ embeddings[leader])
            if max(cosine, fuzz.ratio(compact[index], compact[leader]) / 100) >= threshold:
                cluster.append(index)
                break
        else:
            clusters.append([index])
    return [[parts[index] for index in cluster] for cluster in clusters]


def answer_groups_for_question(*, question_id: int, semantic_threshold: float = SEMANTIC_THRESHOLD) -> list[AnswerGroup]:
    """Groups of two or more answers to a question that read the same, largest first.

    Answers group when their texts are equal after ``text_normalise`` with spaces ignored. For a
    question scored with the semantic strategy, these groups (and single answers) are then merged
    when their texts are at least ``semantic_threshold`` similar. Blank answers, answers without
    text and answers a teacher pulled out (``group_member_detach``) are never grouped. Ties in size
    are ordered by the first member's script number.
    """
    question = Question.objects.select_related("exam").get(pk=question_id)
    by_key: dict[str, list[Answer]] = defaultdict(list)
    for answer in _groupable(question_id):
        key = answer_group_key(answer.text)
        if key:
            by_key[key].append(answer)
    parts = sorted(by_key.values(), key=lambda members: (-len(members), members[0].script.number))
    if question_strategy(question) == "semantic" and len(parts) > 1:
        clusters = _semantic_merge(parts, semantic_threshold)
    else:
        clusters = [[part] for part in parts]
    groups = []
    for cluster in clusters:
        members = sorted((answer for part in cluster for answer in part), key=lambda answer: answer.script.number)
        if len(members) > 1:
            groups.append(AnswerGroup(key=answer_group_key(cluster[0][0].text), text=_representative(members),
                                      members=members))
    groups.sort(key=lambda group: (-group.size, group.members[0].script.number))
    return groups


# ---------------------------------------------------------------- history


def answer_history(*, answer_id: int) -> QuerySet[AnswerChange]:
    """Every recorded change to an answer, newest first."""
    return AnswerChange.objects.filter(answer_id=answer_id).select_related("by", "reverted_change").order_by("-at", "-pk")


def exam_status(*, exam_id: int) -> ExamStatus | None:
    return ExamStatus.objects.filter(exam_id=exam_id).select_related("finished_by").first()


def exam_finished(*, exam_id: int) -> bool:
    return ExamStatus.objects.filter(exam_id=exam_id, finished_at__isnull=False).exists()


# ---------------------------------------------------------------- completeness


@dataclass
class CompletenessItem:
    """Something to settle before an exam is finished.

    ``kind`` is a ``CompletenessWaiver.Kind`` value; ``object_id`` the answer, script or student it
    is about (see ``CompletenessWaiver``); ``answer_id``/``script_id``/``student_id``/``question_id``
    are what the form links to; ``waiver`` is set when a teacher waived it.
    """

    kind: str
    object_id: int
    label: str
    answer_id: int | None = None
    script_id: int | None = None
    student_id: int | None = None
    question_id: int | None = None
    question_label: str = ""
    waiver: CompletenessWaiver | None = None

    @property
    def waived(self) -> bool:
        return self.waiver is not None


@dataclass
class Completeness:
    items: list[CompletenessItem] = field(default_factory=list)

    @property
    def open_items(self) -> list[CompletenessItem]:
        return [item for item in self.items if not item.waived]

    @property
    def complete(self) -> bool:
        """True when nothing is left, or everything left was explicitly waived."""
        return not self.open_items

    def find(self, *, kind: str, object_id: int) -> CompletenessItem | None:
        return next((item for item in self.items if item.kind == kind and item.object_id == object_id), None)


@dataclass
class CompletenessGroup:
    """Items of one kind (and, for answers, one question), shown and fixed together."""

    kind: str
    question_label: str
    items: list[CompletenessItem]

    @property
    def open_count(self) -> int:
        return sum(not item.waived for item in self.items)

    @property
    def title(self) -> str:
        count = len(self.items)
        noun = {
            CompletenessWaiver.Kind.UNSCORED: ("answer with no score", "answers with no score"),
            CompletenessWaiver.Kind.FLAGGED: ("flagged answer to check", "flagged answers to check"),
            CompletenessWaiver.Kind.NO_STUDENT: ("script without a student", "scripts without a student"),
            CompletenessWaiver.Kind.ABSENT: ("student on the roster without a script",
                                             "students on the roster without a script"),
            CompletenessWaiver.Kind.DUPLICATE: ("student claimed by several scripts", "students claimed by several scripts"),
        }[self.kind][count != 1]
        return f"{self.question_label}: {count} {noun}" if self.question_label else f"{count} {noun}"


def completeness_groups(*, completeness: Completeness) -> list[CompletenessGroup]:
    """The items grouped by kind and question, in the order the items come (questions in key order)."""
    groups: dict[tuple[str, int | None], CompletenessGroup] = {}
    for item in completeness.items:
        key = (item.kind, item.question_id)
        if key not in groups:
            groups[key] = CompletenessGroup(kind=item.kind, question_label=item.question_label, items=[])
        groups[key].items.append(item)
    return list(groups.values())


def _answer_label(answer: Answer) -> str:
    return f"Script {answer.script.number} {answer.question.label}"


def exam_completeness(*, exam_id: int) -> Completeness:
    """What stops an exam being finished, in this order:

    - ``unscored``: answers with neither a teacher score nor a suggestion;
    - ``flagged``: flagged answers a teacher has not reviewed (reviewed = the transcription was
      confirmed or a teacher score was set);
    - ``no-student``: scripts with no student that no teacher has confirmed as not on the roster;
    - ``absent``: roster students no script belongs to;
    - ``duplicate``: students claimed by two or more scripts (best identity candidate of several
      unconfirmed scripts, or assigned to several scripts).
    """
    exam = Exam.objects.get(pk=exam_id)
    Kind = CompletenessWaiver.Kind
    items: list[CompletenessItem] = []
    answers = Answer.objects.filter(script__exam=exam).select_related("script", "question").order_by(
        "question__order", "question__label", "script__number"
    )
    for answer in answers.filter(score__isnull=True, suggested_score__isnull=True):
        items.append(CompletenessItem(kind=Kind.UNSCORED, object_id=answer.pk, label=f"{_answer_label(answer)} has no score",
                                      answer_id=answer.pk, script_id=answer.script_id, question_id=answer.question_id,
                                      question_label=answer.question.label))
    for answer in answers.filter(flagged=True, confirmed_text__isnull=True, score__isnull=True):
        reason = f": {answer.flag_reason}" if answer.flag_reason else ""
        items.append(CompletenessItem(kind=Kind.FLAGGED, object_id=answer.pk,
                                      label=f"{_answer_label(answer)} is flagged{reason}",
                                      answer_id=answer.pk, script_id=answer.script_id, question_id=answer.question_id,
                                      question_label=answer.question.label))
    for script in (
        Script.objects.filter(exam=exam, student__isnull=True)
        .exclude(identity__confirmed_at__isnull=False)
        .order_by("number")
    ):
        items.append(CompletenessItem(kind=Kind.NO_STUDENT, object_id=script.pk,
                                      label=f"Script {script.number} has no student", script_id=script.pk))
    for student in students_absent(exam=exam):
        items.append(CompletenessItem(kind=Kind.ABSENT, object_id=student.pk,
                                      label=f"{student.name} ({student.student_id}) has no script", student_id=student.pk))
    duplicates: dict[int, tuple[Student, set[int]]] = {}
    for student, numbers in duplicate_claims(exam=exam):
        duplicates[student.pk] = (student, set(numbers))
    assigned: dict[int, set[int]] = defaultdict(set)
    for student_id, number in Script.objects.filter(exam=exam, student__isnull=False).values_list("student_id", "number"):
        assigned[student_id].add(number)
    for student in Student.objects.filter(pk__in=[pk for pk, numbers in assigned.items() if len(numbers) > 1]):
        duplicates.setdefault(student.pk, (student, set()))[1].update(assigned[student.pk])
    for student, numbers in sorted(duplicates.values(), key=lambda entry: min(entry[1])):
        scripts = ", ".join(str(number) for number in sorted(numbers))
        items.append(CompletenessItem(kind=Kind.DUPLICATE, object_id=student.pk,
                                      label=f"{student.name} ({student.student_id}) is claimed by scripts {scripts}",
                                      student_id=student.pk))
    waivers = {(w.kind, w.object_id): w for w in CompletenessWaiver.objects.filter(exam=exam).select_related("by")}
    for item in items:
        item.waiver = waivers.get((item.kind, item.object_id))
    return Completeness(items=items)


# ---------------------------------------------------------------- progress


@dataclass
class QuestionProgress:
    """Scoring progress of one question. ``scored`` counts teacher scores; ``suggested`` answers
    with only a suggestion; ``flagged`` flagged answers not yet reviewed; ``average`` the mean
    effective score in marks (None when no answer has one)."""

    question: Question
    total: int
    scored: int
    suggested: int
    flagged: int
    average: Decimal | None

    @property
    def unscored(self) -> int:
        return self.total - self.scored - self.suggested


def question_progress(*, exam_id: int) -> list[QuestionProgress]:
    """Per question of the exam, in question order."""
    answers: dict[int, list[Answer]] = defaultdict(list)
    for answer in Answer.objects.filter(question__exam_id=exam_id).only(
        "question_id", "score", "suggested_score", "flagged", "confirmed_text"
    ):
        answers[answer.question_id].append(answer)
    progress = []
    for question in Question.objects.filter(exam_id=exam_id).order_by("order", "label"):
        rows = answers[question.pk]
        effective = [a.score if a.score is not None else a.suggested_score for a in rows]
        effective = [score for score in effective if score is not None]
        progress.append(QuestionProgress(
            question=question,
            total=len(rows),
            scored=sum(a.score is not None for a in rows),
            suggested=sum(a.score is None and a.suggested_score is not None for a in rows),
            flagged=sum(a.flagged and a.confirmed_text is None and a.score is None for a in rows),
            average=(sum(effective, Decimal(0)) / len(effective)).quantize(Decimal("0.01")) if effective else None,
        ))
    return progress

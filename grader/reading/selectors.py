"""Read access for the reading screens: pipeline progress, answers, identities and crop images.

Everything here is computed from the records (pages, answers, identities); nothing is stored to
track progress. Crops are cut from the 150 dpi scan page images; boxes are ``[x1, y1, x2, y2]`` in
scan pixels.
"""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Max, Q
from django.http import Http404
from django.utils import timezone
from PIL import Image

from annotations.models import AnswerBox
from annotations.selectors import box_on_script
from grader.models import RESERVED_LABELS, Exam, Question, ScanPage, ScanUpload, Script, Student
from ml.scoring import ScoreRule
from grader.wording import counted

from . import services
from .models import Answer, ScriptIdentity

# Pixels of page kept around a box in a crop image, so writing that overflows the box shows.
CROP_MARGIN = 12
# Work that changed the records this recently is taken to be still under way (queued or running).
ACTIVE_WINDOW = timedelta(minutes=10)


# ---------------------------------------------------------------- pipeline progress


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline: ``done`` of ``total`` items (a stage with nothing to do is complete)."""

    key: str
    label: str
    done: int
    total: int
    unit: str
    notes: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return self.done >= self.total

    @property
    def percent(self) -> int:
        return int(100 * min(self.done, self.total) / self.total) if self.total else 0


@dataclass(frozen=True)
class ReadError:
    message: str
    places: tuple[tuple[int, str], ...]  # (script number, question label), in script order


@dataclass(frozen=True)
class Pipeline:
    stages: tuple[Stage, ...]
    uploads_running: int
    uploads_failed: int
    has_boxes: bool
    flagged: int
    flagged_answers: tuple[Answer, ...]
    errors: tuple[ReadError, ...]
    error_count: int
    unmatched_scripts: int
    last_activity: datetime | None
    questions: tuple[Question, ...] = field(default=())

    @property
    def complete(self) -> bool:
        return all(stage.complete for stage in self.stages)

    @property
    def pending(self) -> bool:
        """Whether work that runs by itself is unfinished: an upload in processing, or boxes not read yet."""
        read = self.stage("read")
        return bool(self.uploads_running) or not read.complete

    @property
    def stalled(self) -> bool:
        """Boxes wait to be read and nothing has been read, made or moved for ``WORK_STALLED_MINUTES``:
        the worker reading them stopped, or reading was never queued. The recovery sweep queues it
        again by itself; the teacher can too (:func:`scripts_unread`)."""
        if not self.pending or self.uploads_running or not self.has_boxes or not self.script_count:
            return False
        waited = timedelta(minutes=settings.WORK_STALLED_MINUTES)
        return self.last_activity is None or timezone.now() - self.last_activity >= waited

    @property
    def stalled_minutes(self) -> int:
        return settings.WORK_STALLED_MINUTES

    @property
    def recently_active(self) -> bool:
        return self.last_activity is not None and timezone.now() - self.last_activity < ACTIVE_WINDOW

    @property
    def fingerprint(self) -> str:
        """Changes whenever any count changes: polls compare it to tell progress from a stall."""
        return ".".join(f"{stage.done}-{stage.total}" for stage in self.stages) + f".{self.error_count}"

    @property
    def script_count(self) -> int:
        return self.stage("identity").total

    def stage(self, key: str) -> Stage:
        return next(stage for stage in self.stages if stage.key == key)


def _rule_problem(question: Question) -> str | None:
    try:
        ScoreRule(
            max_score=question.max_score,
            min_similarity=question.effective_min_similarity,
            granularity=question.effective_granularity,
        )
    except ValueError as error:
        return str(error)
    return None


def _has_key(question: Question) -> bool:
    return any(text.strip() for text in (question.answer, *question.accept))


def pipeline_progress(*, exam: Exam) -> Pipeline:
    """How far the exam's scans have got: split, aligned, read, suggested, matched to students."""
    uploads = list(exam.uploads.values_list("status", "pages_done", "pages_total"))
    split_done = split_total = running = failed = 0
    for status, done, total in uploads:
        if status == ScanUpload.Status.FAILED:
            failed += 1
            continue
        split_total += total
        split_done += total if status == ScanUpload.Status.DONE else min(done, total)
        running += status != ScanUpload.Status.DONE
    placed = ScanPage.objects.filter(exam=exam, discarded=False, script__isnull=False)
    placed_count = placed.count()
    aligned = placed.filter(transform__ok=True).count()
    align_notes = []
    if placed_count and not exam.template_pages.exists():
        align_notes.append("Upload the blank exam: pages are aligned to it.")
    elif placed_count - aligned:
        align_notes.append(f"{counted(placed_count - aligned, 'page')} could not be aligned; their boxes are placed uncorrected.")

    top_boxes = AnswerBox.objects.filter(exam=exam, parent=None)
    question_ids = list(top_boxes.filter(question__isnull=False).values_list("question_id", flat=True))
    identity_labels = set(top_boxes.filter(label__in=RESERVED_LABELS).values_list("label", flat=True))
    script_count = exam.scripts.count()
    answers = Answer.objects.filter(script__exam=exam, question_id__in=question_ids)
    read_answers = answers.filter(read_at__isnull=False)
    identities = list(ScriptIdentity.objects.filter(script__exam=exam).values_list("readings", "read_at"))
    read_done = read_answers.count() + sum(len(set(readings) & identity_labels) for readings, _ in identities)
    read_total = script_count * (len(question_ids) + len(identity_labels))

    usable = read_answers.filter(read_error="")
    suggest_total = usable.count()
    suggest_done = usable.filter(Q(similarity__isnull=False) | Q(blank=True)).count()
    questions = tuple(Question.objects.filter(pk__in=question_ids).select_related("exam").order_by("order", "label"))
    suggest_notes = []
    keyless = [question.label for question in questions if not _has_key(question)]
    if keyless:
        suggest_notes.append(f"No key answer for {', '.join(keyless)}: add one to the answer key.")
    for question in questions:
        if problem := _rule_problem(question):
            suggest_notes.append(f"{question.label}: {problem}; fix it in the question settings.")

    with_student = exam.scripts.filter(student__isnull=False).count()
    unmatched = script_count - with_student
    identity_notes = []
    if unmatched:
        identity_notes.append(f"{counted(unmatched, 'script')} without a student.")

    errors: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for message, number, label in (
        answers.exclude(read_error="").order_by("script__number", "question__order").values_list(
            "read_error", "script__number", "question__label"
        )
    ):
        errors[message].append((number, label))
    flagged = answers.filter(flagged=True)
    last = [
        answers.aggregate(at=Max("read_at"))["at"],
        ScriptIdentity.objects.filter(script__exam=exam).aggregate(at=Max("read_at"))["at"],
        exam.scripts.aggregate(at=Max("created_at"))["at"],
        exam.uploads.aggregate(at=Max("created_at"))["at"],
    ]
    stages = (
        Stage("split", "Split into pages", split_done, split_total, "pages processed of pages uploaded",
              (f"{counted(failed, 'upload')} failed.",) if failed else ()),
        Stage("align", "Aligned", aligned, placed_count, "pages aligned of pages in scripts", tuple(align_notes)),
        Stage("read", "Read", read_done, read_total, "boxes read of boxes on all scripts",
              () if question_ids or identity_labels else ("Draw the answer boxes first.",)),
        Stage("suggest", "Suggested scores", suggest_done, suggest_total, "answers with a suggestion of answers read",
              tuple(suggest_notes)),
        Stage("identity", "Students", with_student, script_count, "scripts with a student", tuple(identity_notes)),
    )
    return Pipeline(
        stages=stages,
        uploads_running=running,
        uploads_failed=failed,
        has_boxes=bool(question_ids or identity_labels),
        flagged=flagged.count(),
        flagged_answers=tuple(flagged.select_related("script", "question").order_by("script__number", "question__order")[:50]),
        errors=tuple(ReadError(message, tuple(places)) for message, places in errors.items()),
        error_count=sum(len(places) for places in errors.values()),
        unmatched_scripts=unmatched,
        last_activity=max((at for at in last if at is not None), default=None),
        questions=questions,
    )


# ---------------------------------------------------------------- answers


def question_get(*, exam: Exam, question_id: int) -> Question:
    question = exam.questions.select_related("exam").filter(pk=question_id).first()
    if question is None:
        raise Http404("No such question.")
    return question


def answer_list_for_question(*, question: Question):
    return question.answers.select_related("script", "page", "question").order_by("script__number")


def answer_list_for_script(*, script: Script):
    return script.answers.select_related("question", "page").order_by("question__order", "question__label")


def answer_get(*, exam: Exam, answer_id: int) -> Answer:
    answer = Answer.objects.select_related("page", "script").filter(script__exam=exam, pk=answer_id).first()
    if answer is None:
        raise Http404("No such answer.")
    return answer


def question_strategy_auto(*, question: Question) -> str:
    """What the ``auto`` strategy picks for this question's key (``auto`` when it has no key yet)."""
    probe = Question(exam=question.exam, answer=question.answer, accept=question.accept, strategy="auto")
    return services.question_strategy(probe)


# ---------------------------------------------------------------- crops


def crop_jpeg(*, page: ScanPage, bbox, margin: int = CROP_MARGIN) -> bytes:
    """The page cut to ``bbox`` (scan pixels) plus ``margin`` on every side, within the page, as JPEG."""
    with page.image.open("rb") as handle, Image.open(handle) as image:
        x1, y1, x2, y2 = (int(round(v)) for v in bbox)
        box = (max(0, x1 - margin), max(0, y1 - margin), min(image.width, x2 + margin), min(image.height, y2 + margin))
        if box[2] <= box[0] or box[3] <= box[1]:
            raise Http404("The box lies outside its page.")
        crop = image.crop(box).convert("RGB")
    buffer = io.BytesIO()
    crop.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def answer_crop_jpeg(*, answer: Answer) -> bytes:
    if answer.page is None or not answer.crop:
        raise Http404("This answer has not been read from a page.")
    return crop_jpeg(page=answer.page, bbox=answer.crop)


def identity_crop_jpeg(*, script: Script, label: str) -> bytes:
    if label not in RESERVED_LABELS:
        raise Http404("No such box.")
    box = AnswerBox.objects.filter(exam_id=script.exam_id, parent=None, label=label).first()
    placed = box_on_script(script=script, box=box) if box is not None else None
    if placed is None:
        raise Http404(f"Script {script.number} has no {label} box.")
    page, bbox, _ = placed
    return crop_jpeg(page=page, bbox=bbox)


# ---------------------------------------------------------------- identity


@dataclass
class Candidate:
    rank: int
    student_id: str
    score: float
    student: Student | None
    on_script: int | None = None  # another script this student is assigned to
    lead: float | None = None  # nats ahead of the runner-up, when matched from the ink


@dataclass
class IdentityRow:
    script: Script
    identity: ScriptIdentity | None
    candidates: list[Candidate]
    state: str  # confirmed, not-on-roster, matched, unmatched, unread
    error: str = ""
    saved: bool = False

    @property
    def needs_attention(self) -> bool:
        return self.state in ("unmatched", "unread")

    @property
    def default_choice(self) -> Student | None:
        """What Enter confirms: the script's student, else the best candidate."""
        if self.script.student is not None:
            return self.script.student
        return next((c.student for c in self.candidates if c.student is not None), None)


def _identity_state(script: Script, identity: ScriptIdentity | None) -> str:
    if identity is not None and identity.confirmed_at:
        return "confirmed" if script.student_id else "not-on-roster"
    if script.student_id:
        return "matched"
    if identity is None or identity.read_at is None:
        return "unread"
    return "unmatched"


def _row(script: Script, identity: ScriptIdentity | None, students: dict[str, Student], on_script: dict[int, int]):
    candidates = []
    for rank, c in enumerate((identity.candidates if identity else [])[:2], start=1):
        student = students.get(c["student"])
        elsewhere = on_script.get(student.pk) if student else None
        candidates.append(
            Candidate(rank=rank, student_id=c["student"], score=c["score"], student=student,
                      on_script=elsewhere if elsewhere != script.number else None, lead=c.get("lead"))
        )
    return IdentityRow(script=script, identity=identity, candidates=candidates, state=_identity_state(script, identity))


def _assigned(exam: Exam) -> dict[int, int]:
    """Student pk -> number of the script they are assigned to."""
    return dict(exam.scripts.filter(student__isnull=False).values_list("student_id", "number"))


def identity_row(*, script: Script) -> IdentityRow:
    """One script's identity as the identity screen shows it."""
    students = {s.student_id: s for s in script.exam.students.all()}
    identity = ScriptIdentity.objects.filter(script=script).select_related("confirmed_by").first()
    return _row(script, identity, students, _assigned(script.exam))


def identity_rows(*, exam: Exam) -> list[IdentityRow]:
    """Every script, those that need a teacher (not confirmed, not confidently matched) first."""
    students = {s.student_id: s for s in exam.students.all()}
    identities = {i.script_id: i for i in ScriptIdentity.objects.filter(script__exam=exam).select_related("confirmed_by")}
    assigned = _assigned(exam)
    rows = [
        _row(script, identities.get(script.pk), students, assigned)
        for script in exam.scripts.select_related("student").order_by("number")
    ]
    rows.sort(key=lambda row: (not row.needs_attention, row.script.number))
    return rows


def identity_roster(*, exam: Exam) -> list[dict]:
    """The roster for the search box: each student with the script they are on, if any."""
    on_script = dict(exam.scripts.filter(student__isnull=False).values_list("student_id", "number"))
    return [
        {"pk": s.pk, "id": s.student_id, "name": s.name, "class": s.class_name, "script": on_script.get(s.pk)}
        for s in exam.students.order_by("name")
    ]


def students_absent(*, exam: Exam):
    """Students on the roster that no script belongs to (absent, or their script is not matched yet)."""
    return exam.students.filter(scripts__isnull=True).order_by("class_name", "name")


def duplicate_claims(*, exam: Exam) -> list[tuple[Student, list[int]]]:
    """Students who are the best candidate of two or more scripts not yet confirmed by a teacher."""
    claims: dict[str, list[int]] = defaultdict(list)
    for number, candidates in (
        ScriptIdentity.objects.filter(script__exam=exam, confirmed_at__isnull=True)
        .order_by("script__number")
        .values_list("script__number", "candidates")
    ):
        if candidates:
            claims[candidates[0]["student"]].append(number)
    students = {s.student_id: s for s in exam.students.filter(student_id__in=list(claims))}
    return [(students[sid], numbers) for sid, numbers in claims.items() if len(numbers) > 1 and sid in students]


def identity_summary(*, rows: list[IdentityRow]) -> dict[str, int]:
    counts = Counter(row.state for row in rows)
    return {
        "total": len(rows),
        "attention": sum(row.needs_attention for row in rows),
        "confirmed": counts["confirmed"] + counts["not-on-roster"],
        "matched": counts["matched"],
    }


IDENTITY_LABELS = ("NAME", "ID")


def scripts_unread(*, exam_ids: Sequence[int] | None = None) -> dict[int, list[int]]:
    """Exam id -> its scripts with a box not yet read (a question's answer, or the identity), for the
    exams in ``exam_ids`` (all exams: None)."""
    boxes = AnswerBox.objects.filter(parent=None)
    if exam_ids is not None:
        boxes = boxes.filter(exam_id__in=exam_ids)
    questions = dict(boxes.filter(question__isnull=False).values("exam_id")
                     .annotate(n=Count("question", distinct=True)).values_list("exam_id", "n"))
    identity = set(boxes.filter(label__in=IDENTITY_LABELS).values_list("exam_id", flat=True))
    scripts = (Script.objects.filter(exam_id__in=set(questions) | identity)
               .annotate(read=Count("answers", distinct=True, filter=Q(
                   answers__read_at__isnull=False, answers__question__boxes__parent=None)))
               .values_list("pk", "exam_id", "read", "identity__read_at"))
    unread: dict[int, list[int]] = defaultdict(list)
    for script_id, exam_id, read, identity_read_at in scripts:
        if read < questions.get(exam_id, 0) or (exam_id in identity and identity_read_at is None):
            unread[exam_id].append(script_id)
    return unread

"""Reading every answer box of a script, suggesting scores, and matching scripts to the roster.

Engines come from ``ml.recognition``: EasyOCR always, and the Qwen2.5-VL engine when
``settings.VLM_MODEL_PATH`` is set (on GPU workers, queue ``vlm``). Boxes are placed on each script by
``annotations.selectors.box_on_script`` (template pixels mapped through the page's alignment, or the
teacher's adjustment), so every crop here is ``[x1, y1, x2, y2]`` in scan pixels at 150 dpi.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from PIL import Image

from annotations.models import AnswerBox
from annotations.selectors import box_on_script
from grader.models import Exam, Question, ScanPage, ScanUpload, Script, Student, TemplatePage, User
from ml.alignment import alignment_from_dict, scan_rectify
from ml.identity import (
    IdentityResult,
    RosterEntry,
    WrittenIdentity,
    candidate_fits,
    id_alphabet,
    identity_match,
    roster_texts,
)
from ml.recognition.base import Recognizer, Region, RegionKind
from ml.pages import ink_beyond_print
from ml.recognition.ocr import OcrConfig, OcrRecognizer, ink_crop
from ml.marking import (
    Learned,
    Marked,
    Suggestion,
    Written,
    answer_kind,
    answers_touched,
    decimal_point_lost,
    question_suggest,
)
from ml.recognition.fit import Frames
from ml.scoring import ScoreRule, marks_text
from ml.similarity import NumericTolerance, number_parse, strategy_choose, text_normalise

from .models import Answer, BoxFrames, ScriptIdentity
from .signals import exam_answers_read

logger = logging.getLogger(__name__)

OCR = "easyocr"
VLM = "vlm"
# Which engine's text wins when several read the same box: the fine-tuned model, when there is one.
_PREFERENCE = (VLM, OCR)
_engines: dict[str, Recognizer] = {}
_engines_lock = threading.Lock()
_TUNED_ENGINES_KEPT = 4


def engine_names() -> list[str]:
    """The engines this installation runs: EasyOCR, plus the VLM when a model path is configured."""
    return [OCR, VLM] if settings.VLM_MODEL_PATH else [OCR]


def engine_get(name: str, *, recognizer_path: Path | None = None) -> Recognizer:
    """One recogniser per worker process (and per fine-tuned reader), loaded on first use (model loads
    take seconds). ``recognizer_path`` names an exam's fine-tuned EasyOCR weights (``grader.learning``)."""
    key = name if recognizer_path is None else f"{name}:{recognizer_path}"
    with _engines_lock:
        if key not in _engines:
            tuned = [other for other in _engines if ":" in other]
            if recognizer_path is not None and len(tuned) >= _TUNED_ENGINES_KEPT:
                del _engines[tuned[0]]  # the oldest: a worker serves few exams at once, each model ~50 MB
            if name == OCR:
                _engines[key] = OcrRecognizer(
                    # One torch thread per worker process: idle threads spin and starve the other cores.
                    OcrConfig(gpu="auto", threads=1, low_confidence=settings.READ_LOW_CONFIDENCE,
                              recognizer_path=recognizer_path)
                )
            elif name == VLM:
                from ml.recognition.vlm import VlmConfig, VlmRecognizer

                _engines[key] = VlmRecognizer(
                    VlmConfig(model_path=settings.VLM_MODEL_PATH, adapter_path=settings.VLM_ADAPTER_PATH or None,
                              batch_size=settings.VLM_BATCH_SIZE, backend=settings.VLM_BACKEND,
                              static_cache=settings.VLM_STATIC_CACHE, compile=settings.VLM_COMPILE)
                )
            else:
                raise ValueError(f"Unknown engine {name!r}")
        return _engines[key]


def exam_reader_path(*, exam: Exam) -> Path | None:
    """The fine-tuned EasyOCR weights this exam is read with (``grader.learning``), or None for english_g2's."""
    from grader.learning.selectors import exam_reader_weights

    return exam_reader_weights(exam=exam)


def _region_kind(*, box: AnswerBox) -> RegionKind:
    if box.label == "NAME":
        return "name"
    if box.question_id and box.question.answer and number_parse(box.question.answer) is not None:
        return "number"
    return "text"


def reading_best(readings: dict) -> tuple[str, float | None]:
    """The text and confidence of the preferred engine that read something (``("", None)`` if none did)."""
    for engine in _PREFERENCE:
        reading = readings.get(engine)
        if reading and reading.get("text") is not None:
            return reading["text"], reading.get("confidence")
    return "", None


def _flag_reason(*, readings: dict, blank: bool, key: Sequence[str] = ()) -> str:
    """Why a person should check this reading, or "" when nothing calls for it."""
    if blank:
        return ""
    text = reading_best(readings)[0]
    if decimal_point_lost(text=text, key=key):
        return f"Decimal point? Read {text!r}; the key has {', '.join(k for k in key if number_parse(k))}."
    unread = [engine for engine, reading in readings.items() if reading.get("text") is None]
    if unread:
        return f"Not read by {', '.join(unread)}."
    texts = {engine: reading["text"] for engine, reading in readings.items()}
    if len({text_normalise(text) for text in texts.values()}) > 1:
        return "Engines disagree: " + " / ".join(f"{engine} {text!r}" for engine, text in texts.items()) + "."
    low = [
        f"{engine} {reading['confidence']:.2f}"
        for engine, reading in readings.items()
        if reading.get("confidence") is not None and reading["confidence"] < settings.READ_LOW_CONFIDENCE
    ]
    return f"Low confidence ({', '.join(low)})." if low else ""


def script_read(*, script_id: int, engines: Sequence[str] | None = None, box_ids: Sequence[int] | None = None) -> int:
    """Read the boxes of one script (all, or ``box_ids``) with ``engines``; returns how many were read.
    See :func:`scripts_read`."""
    return scripts_read(script_ids=[script_id], engines=engines, box_ids=box_ids)


def scripts_read(*, script_ids: Sequence[int], engines: Sequence[str] | None = None,
                 box_ids: Sequence[int] | None = None) -> int:
    """Read the boxes of several scripts (all, or ``box_ids``) with ``engines``; returns how many were read.

    An engine that reads pages in batches (the VLM) gets every page of these scripts in one call,
    pages with as many boxes side by side, so a GPU works on full batches across scripts. Idempotent:
    answers are updated in place, and a teacher's score or corrected text is never changed. A page
    that fails is recorded on its answers (``read_error``) and the rest go on.
    """
    scripts = list(Script.objects.select_related("exam").filter(pk__in=script_ids).order_by("exam_id", "number"))
    by_exam: dict[int, list[Script]] = defaultdict(list)
    for script in scripts:
        by_exam[script.exam_id].append(script)
    return sum(_exam_scripts_read(scripts=group, engines=engines, box_ids=box_ids) for group in by_exam.values())


@dataclass
class _PageWork:
    """One page of one script to read: its boxes as placed (box, ``[x1, y1, x2, y2]`` scan pixels,
    adjusted by the teacher), the page image, what each engine is asked, and the results by box id."""

    script: Script
    page: ScanPage
    placed: list[tuple[AnswerBox, tuple[int, int, int, int], bool]]
    image: Image.Image | None = None
    regions: list[Region] = field(default_factory=list)
    second_readings: list[Region] = field(default_factory=list)
    results: dict[int, dict] = field(default_factory=dict)
    error: str = ""


def _exam_scripts_read(*, scripts: list[Script], engines: Sequence[str] | None, box_ids: Sequence[int] | None) -> int:
    exam = scripts[0].exam
    engines = list(engines or engine_names())
    boxes = exam.boxes.filter(parent=None).select_related("question")
    boxes = list(boxes.filter(pk__in=box_ids) if box_ids is not None else boxes)
    roster = [RosterEntry(student_id=s.student_id, name=s.name, class_name=s.class_name) for s in exam.students.all()]
    ids = id_alphabet(roster=roster) if roster else None
    recognizer_path = exam_reader_path(exam=exam)
    work: list[_PageWork] = []
    for script in scripts:
        by_page: dict[int, _PageWork] = {}
        missing = []
        for box in boxes:
            placed = box_on_script(script=script, box=box)
            if placed is None:
                missing.append(box)
                continue
            page, bbox, adjusted = placed
            by_page.setdefault(page.pk, _PageWork(script=script, page=page, placed=[])).placed.append((box, bbox, adjusted))
        for item in by_page.values():
            try:
                with item.page.image.open("rb") as handle:
                    item.image = Image.open(handle).convert("RGB")
                _page_plan(item=item, ids=ids,
                           blank_check=_blank_check(page=item.page, image=item.image))
            except Exception as error:  # one bad page must not stop the script; the teacher sees why
                logger.exception("Reading page %s of script %s failed", item.page.pk, script.pk)
                item.error = f"Reading failed: {error}"
            work.append(item)
        for box in missing:
            if box.question_id:
                Answer.objects.update_or_create(
                    script=script,
                    question=box.question,
                    defaults={"page": None, "crop": None, "read_at": timezone.now(),
                              "read_error": f"The script has no page {box.page + 1}."},
                )
    for name in engines:
        engine = engine_get(name, recognizer_path=recognizer_path if name == OCR else None)
        _engine_read(engine=engine, name=name, work=[item for item in work if not item.error], roster=roster)
    read = 0
    for item in work:
        results = {box.pk: {"error": item.error} for box, _, _ in item.placed} if item.error else item.results
        _results_store(script=item.script, page=item.page, placed=item.placed, results=results, engines=engines)
        read += len(item.placed)
    for script in scripts:
        answers = script.answers.select_related("question", "question__exam")
        if box_ids is not None:
            answers = answers.filter(question__boxes__in=box_ids)
        answers_suggest(answers=list(answers))
    return read


def _page_plan(*, item: _PageWork, ids: str | None, blank_check) -> None:
    """Blank detection for the page's boxes, and the regions left for the engines to read.

    An ID box is read in ``ids``, the roster's alphabet (``ml.identity.id_alphabet``): free, "S1004"
    reads "Sloo4". Without a roster yet, it is read as text and by EasyOCR a second time with digits
    only, as ``alternatives``: the text reading garbles digits ("Slooy"), the digit reading the letters
    ("51004"), and identity matching takes whichever fits a roster entry better.
    """
    for box, bbox, adjusted in item.placed:
        blank = blank_check(box, bbox, adjusted)
        item.results[box.pk] = {"blank": blank, "readings": {}, "alternatives": {}}
        if not blank:
            item.regions.append(Region(index=box.pk, bbox=bbox, kind=_region_kind(box=box),
                                       allowlist=ids if box.label == "ID" else None))
            if box.label == "ID" and ids is None:
                item.second_readings.append(Region(index=-box.pk, bbox=bbox, kind="digits"))


def _engine_read(*, engine: Recognizer, name: str, work: list[_PageWork], roster: Sequence[RosterEntry]) -> None:
    """One engine's readings of every page in ``work``, kept in each page's results; a page the engine
    fails on is marked failed."""
    asked = {id(item): item.regions + item.second_readings if name == OCR else item.regions for item in work}
    todo = [item for item in work if asked[id(item)]]
    read_pages = getattr(engine, "read_pages", None)
    if read_pages is not None and len(todo) > 1:
        # Like lengths side by side: a batch pads every prompt and reply to its longest.
        todo.sort(key=lambda item: len(asked[id(item)]))
        try:
            found = read_pages(pages=[(item.image, asked[id(item)]) for item in todo])
        except Exception:  # one bad page must not fail the others: read them one by one below
            logger.exception("Reading %s pages in one batch with %s failed; reading them one by one", len(todo), name)
        else:
            for item, readings in zip(todo, found, strict=True):
                _readings_keep(item=item, name=name, readings=readings, engine=engine, roster=roster)
            return
    for item in todo:
        try:
            readings = engine.read_page(page=item.image, regions=asked[id(item)])
            _readings_keep(item=item, name=name, readings=readings, engine=engine, roster=roster)
        except Exception as error:
            logger.exception("Reading page %s of script %s with %s failed", item.page.pk, item.script.pk, name)
            item.error = f"Reading failed: {error}"


def _readings_keep(*, item: _PageWork, name: str, readings, engine: Recognizer, roster: Sequence[RosterEntry]) -> None:
    for reading in readings:
        target = item.results[abs(reading.index)]["alternatives" if reading.index < 0 else "readings"]
        target[name] = {"text": reading.text, "confidence": reading.confidence}
        if reading.index > 0 and reading.frames is not None:
            item.results[reading.index].setdefault("frames", {})[name] = reading.frames
    if roster and hasattr(engine, "candidates_score"):
        _roster_score(engine=engine, image=item.image, regions=item.regions, placed=item.placed, roster=roster,
                      results=item.results)


def _template_image(page: TemplatePage) -> Image.Image:
    """A template page's raster, kept per process: every script of an exam is compared with it.

    Keyed by the file itself (path, modification time, size), so a replaced template is read afresh.
    """
    path = Path(page.image.path)
    stat = path.stat()
    return _template_image_cached(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _template_image_cached(path: str, mtime_ns: int, size: int) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("L")


def _blank_check(*, page: ScanPage, image: Image.Image):
    """A function telling whether a box is blank on this page: no ink beyond what the template prints.

    Boxes whose blank template prints nothing inside them only need the ink found inside the frame
    (``ink_crop``). Where the template prints inside a box (a unit, a "Working:" label), the scan is
    rectified into the template frame and only ink that the print does not explain counts.
    """
    template_page = page.exam.template_pages.filter(index=page.template_index).first()
    template = _template_image(template_page) if template_page is not None and page.transform else None
    rectified = []

    def blank(box: AnswerBox, bbox: tuple[int, int, int, int], adjusted: bool) -> bool:
        if ink_crop(page=image, bbox=bbox) is None:
            return True
        if template is None or adjusted or ink_crop(page=template, bbox=box.bbox) is None:
            return False
        if not rectified:
            rectified.append(scan_rectify(scan=image, alignment=alignment_from_dict(page.transform)))
        return not ink_beyond_print(scan_crop=rectified[0].crop(box.bbox), template_crop=template.crop(box.bbox))

    return blank


_IDENTITY_BOXES = {"NAME": "name", "ID": "id", "CLASS": "class"}


def _roster_score(*, engine, image: Image.Image, regions: Sequence[Region], placed, roster, results: dict) -> None:
    """An engine without frames (the VLM) scores every roster student's name, ID and class against the
    identity boxes it read, as ``results[box]["candidate_fits"]`` (see ``ml.identity.candidate_fits``)."""
    labels = {box.pk: box.label for box, _, _ in placed if box.is_identity}
    for region in regions:
        box = _IDENTITY_BOXES.get(labels.get(region.index, ""))
        if box is None:
            continue
        texts = roster_texts(roster=roster, box=box)
        own = results[region.index]["readings"].get(engine.name, {}).get("text") or ""
        try:
            scores = engine.candidates_score(page=image, region=region, candidates=[text for _, text in texts] + [own])
        except TypeError:  # a generate function that cannot score texts: the readings decide
            return
        results[region.index]["candidate_fits"] = candidate_fits(texts=texts, scores=scores[:-1], reference=scores[-1])


@transaction.atomic
def _results_store(*, script: Script, page, placed, results: dict[int, dict], engines: Sequence[str]) -> None:
    now = timezone.now()
    _frames_store(script=script, placed=placed, results=results, engines=engines)
    for box, bbox, _ in placed:
        result = results[box.pk]
        if box.is_identity:
            _identity_store(script=script, box=box, result=result, now=now)
            continue
        if box.question_id is None:
            continue
        answer, _ = Answer.objects.select_for_update().get_or_create(script=script, question=box.question)
        answer.page, answer.crop, answer.read_at = page, list(bbox), now
        if "error" in result:
            answer.read_error = result["error"]
            answer.save()
            continue
        fresh = {engine: {"text": "", "confidence": 1.0} for engine in engines} if result["blank"] else result["readings"]
        readings = {**answer.readings, **fresh}
        answer.blank, answer.readings, answer.read_error = result["blank"], readings, ""
        best_text, answer.confidence = reading_best(readings)
        answer.text = answer.confirmed_text if answer.confirmed_text is not None else best_text
        answer.flag_reason = _flag_reason(
            readings=readings, blank=answer.blank, key=[box.question.answer, *box.question.accept]
        )
        answer.flagged = bool(answer.flag_reason)
        answer.save()


def _frames_store(*, script: Script, placed, results: dict[int, dict], engines: Sequence[str]) -> None:
    """Keep each engine's frames of the ink of this page's boxes, in two queries: the boxes' old
    frames go (a box read blank, or by an engine without frames, keeps none, so stale ink is never
    scored) and the new ones are written."""
    read = [box for box, _, _ in placed if "error" not in results[box.pk]]
    BoxFrames.objects.filter(script=script, box__in=read, engine__in=engines).delete()
    BoxFrames.objects.bulk_create([
        BoxFrames(script=script, box=box, engine=engine, data=found.to_bytes())
        for box in read for engine, found in results[box.pk].get("frames", {}).items()
    ])


def _identity_store(*, script: Script, box: AnswerBox, result: dict, now) -> None:
    identity, _ = ScriptIdentity.objects.get_or_create(script=script)
    text = "" if result.get("blank") or "error" in result else reading_best(result["readings"])[0]
    identity.readings = {**identity.readings, box.label: result.get("readings", {})}
    if box.label == "ID":
        identity.readings["ID digits"] = result.get("alternatives", {})
    # The roster as the engine scored it: kept with the readings, so matching needs no model.
    fits = {**identity.readings.get("fits", {})}
    fits.pop(box.label, None)
    if result.get("candidate_fits"):
        fits[box.label] = {student: list(pair) for student, pair in result["candidate_fits"].items()}
    identity.readings["fits"] = fits
    field = {"NAME": "name_text", "ID": "id_text", "CLASS": "class_text"}[box.label]
    setattr(identity, field, text[:64] if field != "name_text" else text[:200])
    identity.read_at = now
    identity.save()


# ---------------------------------------------------------------- suggested scores


def question_rule(question: Question) -> ScoreRule | None:
    """The question's scoring rule, or None when its settings cannot make one (the reason is logged)."""
    try:
        return ScoreRule(
            max_score=question.max_score,
            min_similarity=question.effective_min_similarity,
            granularity=question.effective_granularity,
        )
    except ValueError as error:
        logger.warning("Question %s of exam %s has no usable scoring rule: %s", question.label, question.exam_id, error)
        return None


def question_strategy(question: Question) -> str:
    """The similarity strategy in force: the question's choice, or what ``auto`` picks from the key."""
    accepted = [text for text in (question.answer, *question.accept) if text.strip()]
    if question.strategy != "auto" or not accepted:
        return question.strategy
    return strategy_choose(answers=accepted)


def answers_suggest(*, answers: Iterable[Answer]) -> None:
    """Recompute the transcription used, similarity, suggested score and its reason for ``answers``
    (see ``ml.marking``: teacher scores of the same question, fits of the ink to the key and to
    teacher-scored texts, the learned scorer where one is offered, then the rule). A teacher's
    ``score`` and confirmed text are never touched.
    """
    by_question: dict[int, list[Answer]] = defaultdict(list)
    for answer in answers:
        by_question[answer.question_id].append(answer)
    for question_answers in by_question.values():
        question = question_answers[0].question
        readable = [answer for answer in question_answers if answer.read_at and not answer.read_error]
        if not readable:
            continue
        suggestions = question_suggestions(question=question, answers=readable,
                                           marked=question_marked(question=question),
                                           learned=question_learned(question=question))
        for answer, suggestion in zip(readable, suggestions, strict=True):
            answer.similarity = suggestion.similarity
            answer.similarity_strategy = suggestion.strategy
            answer.suggested_score = suggestion.score
            answer.suggestion_reason = suggestion.reason[:200]
            answer.fit_text = suggestion.fit_text
            if answer.confirmed_text is None:
                answer.text = suggestion.text or ""
        Answer.objects.bulk_update(
            readable, ["similarity", "similarity_strategy", "suggested_score", "suggestion_reason", "fit_text", "text"]
        )


def question_suggestions(*, question: Question, answers: Sequence[Answer], marked: Sequence[Marked],
                         learned: Learned | None) -> list[Suggestion]:
    """What ``ml.marking`` suggests for these read answers of ``question`` with ``marked`` as the
    teacher's evidence and ``learned`` as its learned scorer (None: none offered); nothing is saved,
    so learning can also ask it with part of the evidence held out."""
    texts, words = question_lexicon(question=question)
    return question_suggest(
        answers=_answers_written(question=question, answers=answers),
        key=[text for text in (question.answer, *question.accept) if text.strip()],
        marked=marked,
        rule=question_rule(question),
        strategy=question.strategy,
        tolerance=NumericTolerance(lowest_terms=question.lowest_terms),
        lexicon=texts,
        vocabulary=words,
        learned=learned,
    )


def question_learned(*, question: Question) -> Learned | None:
    """The learned scorer offered for ``question`` (``grader.learning``), or None."""
    from grader.learning.scorers import question_scorer

    return question_scorer(question=question)


def question_resuggest_for_text(*, question: Question, text: str | None) -> list[Answer]:
    """After a teacher scored, unscored or transcribed an answer reading ``text``: suggest again the
    question's unscored answers that text bears on (``ml.marking.answers_touched``) and return them."""
    if not text:
        return []
    unscored = list(
        question.answers.filter(score__isnull=True, read_at__isnull=False, read_error="")
        .select_related("question", "question__exam", "script")
    )
    key = [answer for answer in (question.answer, *question.accept) if answer.strip()]
    written = _answers_written(question=question, answers=unscored)
    touched = [unscored[n] for n in answers_touched(answers=written, text=text, kind=answer_kind(answers=key or [text]))]
    answers_suggest(answers=touched)
    return touched


def _answers_written(*, question: Question, answers: Sequence[Answer]) -> list[Written]:
    frames = _answer_frames(question=question, answers=answers)
    # A teacher who typed a transcription has said the box is not blank, whatever the ink check found.
    return [
        Written(
            text=answer_read_text(answer),
            blank=answer.blank and not (answer.confirmed_text or "").strip(),
            frames=frames.get(answer.script_id),
            confirmed=answer.confirmed_text is not None,
            ref=answer.pk,
        )
        for answer in answers
    ]


def answer_read_text(answer: Answer) -> str | None:
    """What the teacher confirmed, else what the preferred engine read (``None`` when unread)."""
    if answer.confirmed_text is not None:
        return answer.confirmed_text
    return reading_best(answer.readings)[0] or None


# Transcriptions tried against every answer's ink, besides the key and the teacher's texts: what the
# class wrote more than once (a single reading is as likely a misreading as an answer), most frequent first.
LEXICON_SIZE = 48
VOCABULARY_SIZE = 300


def question_lexicon(*, question: Question) -> tuple[list[str], list[str]]:
    """What the class wrote for ``question``, as evidence for transcribing each answer: the texts read
    (or confirmed) on two or more scripts, and the words found in two or more answers, most frequent
    first (a single reading is as likely a misreading as an answer)."""
    counts: Counter[str] = Counter()
    words: Counter[str] = Counter()
    spelling: dict[str, str] = {}
    for readings, confirmed in question.answers.filter(blank=False).values_list("readings", "confirmed_text"):
        text = confirmed if confirmed is not None else reading_best(readings)[0]
        key = text_normalise(text or "").replace(" ", "")
        if key:
            counts[key] += 1
            spelling.setdefault(key, text.strip())
            words.update({word.casefold() for word in (text or "").split() if len(word) > 1})
    return ([spelling[key] for key, count in counts.most_common(LEXICON_SIZE) if count >= 2],
            [word for word, count in words.most_common(VOCABULARY_SIZE) if count >= 2])


def question_marked(*, question: Question) -> list[Marked]:
    """The question's teacher-scored answers as ``ml.marking`` evidence: the text the teacher saw
    (their transcription, else the reading), their score, and "script N" as the source, oldest first."""
    return [
        Marked(text=text, score=answer.score, source=f"script {answer.script.number}", ref=answer.pk)
        for answer in question.answers.filter(score__isnull=False, blank=False)
        .select_related("script")
        .order_by("scored_at", "pk")
        if (text := answer_read_text(answer))
    ]


def _answer_frames(*, question: Question, answers: Sequence[Answer]) -> dict[int, Frames]:
    """Script id -> the OCR frames of the question's box for these answers (where kept)."""
    rows = BoxFrames.objects.filter(
        box__question=question, box__parent=None, engine=OCR, script_id__in=[answer.script_id for answer in answers]
    ).values_list("script_id", "data")
    frames = {}
    for script_id, data in rows:
        try:
            frames[script_id] = Frames.from_bytes(bytes(data))
        except ValueError:  # an unreadable cache entry only costs the fit, never the suggestion
            logger.warning("Frames of script %s, question %s are unreadable; ignored", script_id, question.pk)
    return frames


def question_resuggest(*, question_id: int) -> None:
    question = Question.objects.select_related("exam").get(pk=question_id)
    answers_suggest(answers=question.answers.select_related("question", "question__exam"))


class QuestionSettingsRefused(ValueError):
    """A question's settings were refused; the message says why, for the teacher. Nothing was saved."""


@transaction.atomic
def question_settings_set(
    *, question: Question, max_score: Decimal, min_similarity: float | None, granularity: Decimal | None,
    strategy: str, lowest_terms: bool,
) -> int:
    """Change how one question is scored (None: the exam's default), under the exam's lock, and suggest
    its answers' scores again; teacher scores stay. Returns how many of them are now above ``max_score``.
    A rubric question's maximum is its rubric's total: another is ``QuestionSettingsRefused``."""
    Exam.objects.select_for_update().get(pk=question.exam_id)
    Question.objects.select_for_update().values_list("pk", flat=True).get(pk=question.pk)  # rubrics attach under it
    total = question.rubric_total()
    if total is not None and max_score != total:
        raise QuestionSettingsRefused(
            f"{question.label} is marked by a rubric, so its max score is the rubric's total, {marks_text(total)}, "
            f"not {marks_text(max_score)}; change the rubric's dimensions to change it.")
    Question.objects.filter(pk=question.pk).update(
        max_score=max_score, min_similarity=min_similarity, granularity=granularity, strategy=strategy,
        lowest_terms=lowest_terms,
    )
    question_resuggest(question_id=question.pk)
    return question.answers.filter(score__gt=max_score).count()


def exam_read(*, exam_id: int, engines: Sequence[str] | None = None) -> int:
    """Read every script of an exam in this process, then match identities; returns boxes read.

    For commands that run without a worker (the demo, ``grade_folder``); the web app queues
    ``script_read_task`` per script instead.
    """
    read = sum(
        script_read(script_id=script_id, engines=engines)
        for script_id in Script.objects.filter(exam_id=exam_id).order_by("number").values_list("pk", flat=True)
    )
    exam_resuggest(exam_id=exam_id)
    exam_identity_match(exam_id=exam_id)
    return read


def upload_read_enqueue(*, upload: ScanUpload) -> int:
    """Queue reading of the scripts an upload made, once the exam has answer boxes to read."""
    if not upload.exam.boxes.exists():
        return 0
    scripts = Script.objects.filter(pages__upload=upload).distinct()
    return exam_read_enqueue(exam=upload.exam, scripts=scripts)


def exam_read_enqueue(*, exam: Exam, scripts: Iterable[Script] | None = None) -> int:
    """Queue reading of the given scripts (all of the exam's by default); returns how many."""
    script_ids = [script.pk for script in (scripts if scripts is not None else exam.scripts.all())]
    transaction.on_commit(lambda: reading_queue(script_ids=script_ids))
    return len(script_ids)


def exam_unread_enqueue(*, exam: Exam) -> int:
    """Queue reading of the exam's scripts that have a box not read yet (a stalled or never-queued
    reading); returns how many."""
    from .selectors import scripts_unread

    return exam_read_enqueue(exam=exam, scripts=Script.objects.filter(pk__in=scripts_unread(exam_ids=[exam.pk]).get(exam.pk, [])))


def reading_queue(*, script_ids: Sequence[int], box_id: int | None = None) -> None:
    """Send reading to the workers now (callers wait for their transaction to commit): one ``ocr``
    task a script, and with a VLM configured ``vlm`` tasks of ``VLM_SCRIPTS_PER_TASK`` scripts each,
    so the GPU batches pages across scripts. ``box_id`` reads that box alone."""
    from .tasks import script_box_read_task, script_read_task, scripts_read_vlm_task

    for script_id in script_ids:
        if box_id is None:
            script_read_task.delay(script_id)
        else:
            script_box_read_task.delay(script_id, box_id)
    if settings.VLM_MODEL_PATH:
        size = max(1, settings.VLM_SCRIPTS_PER_TASK)
        for first in range(0, len(script_ids), size):
            scripts_read_vlm_task.delay(list(script_ids[first:first + size]), box_id)


# ---------------------------------------------------------------- identity


class IdentityRefused(ValueError):
    """A teacher's identity choice cannot be applied; the message says why."""


def exam_identity_match(*, exam_id: int) -> IdentityResult:
    """Match every script not yet confirmed by a teacher to the roster (one student per script).

    Confident matches are assigned; other scripts keep no student and list their best candidates
    for the identity screen. Students on teacher-confirmed scripts are left out of the matching.
    """
    with transaction.atomic():
        exam = Exam.objects.select_for_update().get(pk=exam_id)
        identities = list(ScriptIdentity.objects.filter(script__exam=exam).select_related("script"))
        confirmed = [identity for identity in identities if identity.confirmed_by_id or identity.confirmed_at]
        taken = {identity.script.student_id for identity in confirmed if identity.script.student_id}
        students = {student.student_id: student for student in exam.students.exclude(pk__in=taken)}
        open_identities = {identity.script_id: identity for identity in identities if identity not in confirmed}
        identity_frames = _identity_frames(exam=exam, script_ids=list(open_identities))
        result = identity_match(
            written=[
                WrittenIdentity(
                    script=identity.script_id,
                    name=identity.name_text or None,
                    student_id=identity.id_text or None,
                    class_name=identity.class_text or None,
                    id_alternatives=tuple(
                        reading["text"] for reading in identity.readings.get("ID digits", {}).values() if reading.get("text")
                    ),
                    frames=identity_frames.get(identity.script_id, {}),
                    candidate_fits={
                        _IDENTITY_BOXES[label]: {student: tuple(pair) for student, pair in scored.items()}
                        for label, scored in identity.readings.get("fits", {}).items() if label in _IDENTITY_BOXES
                    },
                )
                for identity in open_identities.values()
            ],
            roster=[RosterEntry(student_id=s.student_id, name=s.name, class_name=s.class_name) for s in students.values()],
        )
        for match in result.matches:
            identity = open_identities[match.script]
            identity.score = match.score
            identity.confident = match.confident
            identity.candidates = [
                {"student": student_id, "score": round(score, 3)}
                for student_id, score in ((match.student_id, match.score), (match.runner_up_id, match.runner_up_score))
                if student_id
            ]
            if match.fit is not None and identity.candidates:
                identity.candidates[0]["lead"] = match.fit
            identity.save(update_fields=["score", "confident", "candidates"])
            student = students.get(match.student_id) if match.confident else None
            Script.objects.filter(pk=match.script).update(student=student)
    logger.info(
        "Exam %s identity: %d confident, %d unmatched, %d absent, %d duplicate claims",
        exam_id,
        sum(match.confident for match in result.matches),
        len(result.unmatched),
        len(result.absent),
        len(result.duplicates),
    )
    return result


def _identity_frames(*, exam: Exam, script_ids: Sequence[int]) -> dict[int, dict[str, Frames]]:
    """Script id -> the OCR frames of its NAME, ID and CLASS boxes, keyed "name", "id", "class"."""
    found: dict[int, dict[str, Frames]] = defaultdict(dict)
    rows = BoxFrames.objects.filter(
        script_id__in=script_ids, box__exam=exam, box__parent=None, box__label__in=list(_IDENTITY_BOXES), engine=OCR
    ).values_list("script_id", "box__label", "data")
    for script_id, label, data in rows:
        try:
            found[script_id][_IDENTITY_BOXES[label]] = Frames.from_bytes(bytes(data))
        except ValueError:
            logger.warning("Frames of script %s, box %s are unreadable; ignored", script_id, label)
    return found


def exam_resuggest(*, exam_id: int) -> None:
    """Suggest every question of the exam again, in this process: once all scripts are read, each
    answer is tried against what the whole class wrote (``question_lexicon``), which the first
    scripts read could not see."""
    for question_id in Question.objects.filter(exam_id=exam_id).values_list("pk", flat=True):
        question_resuggest(question_id=question_id)


def exam_resuggest_when_read(*, script_id: int) -> bool:
    """:func:`exam_resuggest` once every script of the exam has answers read (after the last one), then
    ``signals.exam_answers_read``."""
    exam_id = Script.objects.values_list("exam_id", flat=True).get(pk=script_id)
    if Script.objects.filter(exam_id=exam_id).exclude(answers__read_at__isnull=False).exists():
        return False
    exam_resuggest(exam_id=exam_id)
    exam_answers_read.send(sender=Exam, exam_id=exam_id)
    return True


def exam_identity_match_when_read(*, script_id: int) -> bool:
    """Match identities once every script of the exam has had its identity boxes read."""
    exam_id = Script.objects.values_list("exam_id", flat=True).get(pk=script_id)
    if not AnswerBox.objects.filter(exam_id=exam_id, parent=None, label__in=["NAME", "ID"]).exists():
        return False
    if Script.objects.filter(exam_id=exam_id).exclude(identity__read_at__isnull=False).exists():
        return False
    exam_identity_match(exam_id=exam_id)
    return True


@transaction.atomic
def identity_confirm(*, script: Script, student: Student | None, user: User) -> Script:
    """A teacher says whose script this is (or that it is nobody's on the roster, with ``None``)."""
    Exam.objects.select_for_update().get(pk=script.exam_id)
    if student is not None:
        if student.exam_id != script.exam_id:
            raise IdentityRefused("That student is not on this exam's roster.")
        other = Script.objects.filter(exam_id=script.exam_id, student=student).exclude(pk=script.pk).first()
        if other is not None:
            other_identity = ScriptIdentity.objects.filter(script=other).first()
            if other_identity and other_identity.confirmed_at:
                raise IdentityRefused(f"{student.name} is already confirmed on script {other.number}.")
            Script.objects.filter(pk=other.pk).update(student=None)
    identity, _ = ScriptIdentity.objects.get_or_create(script=script)
    identity.confirmed_by, identity.confirmed_at = user, timezone.now()
    identity.save(update_fields=["confirmed_by", "confirmed_at"])
    script.student = student
    script.save(update_fields=["student"])
    return script


# ---------------------------------------------------------------- settings changes


def exam_resuggest_enqueue(*, exam: Exam) -> int:
    """Queue re-suggestion of every question (after the exam's default similarity or granularity changed)."""
    return questions_resuggest_enqueue(question_ids=list(exam.questions.values_list("pk", flat=True)))


def questions_resuggest_enqueue(*, question_ids: Sequence[int]) -> int:
    """Queue re-suggestion of these questions once the transaction commits (their key or settings
    changed); returns how many. Teacher scores are never touched."""
    from .tasks import question_resuggest_task

    question_ids = list(question_ids)
    transaction.on_commit(lambda: [question_resuggest_task.delay(question_id) for question_id in question_ids])
    return len(question_ids)


def box_read_enqueue(*, box: AnswerBox) -> int:
    """Queue reading a new or moved box on every script once the change is committed; returns how
    many scripts. The box editor calls this for exactly the boxes a change touched."""
    if box.parent_id is not None:
        return 0  # steps are not read on their own
    script_ids = list(Script.objects.filter(exam_id=box.exam_id).values_list("pk", flat=True))
    box_id = box.pk
    transaction.on_commit(lambda: reading_queue(script_ids=script_ids, box_id=box_id))
    return len(script_ids)


def script_box_read_enqueue(*, script: Script, box: AnswerBox) -> None:
    """Cut and read one script's answer again once its moved box is committed (the rest stays as read).
    The per-script box view calls this after a teacher moved or reset that script's box."""
    script_id, box_id = script.pk, box.pk
    transaction.on_commit(lambda: reading_queue(script_ids=[script_id], box_id=box_id))


def question_read_enqueue(*, question: Question) -> int:
    """Queue reading one question's box again on every script of its exam (suggestions follow); returns how many."""
    box_id = AnswerBox.objects.filter(exam_id=question.exam_id, parent=None, question=question).values_list(
        "pk", flat=True
    ).first()
    if box_id is None:
        return 0
    script_ids = list(Script.objects.filter(exam_id=question.exam_id).values_list("pk", flat=True))
    transaction.on_commit(lambda: reading_queue(script_ids=script_ids, box_id=box_id))
    return len(script_ids)

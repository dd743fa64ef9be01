"""The learned scorer an exam keeps (``grader.learning.services`` trains it), as suggestions ask it.

Reading asks :func:`question_scorer` for every question it suggests; the scorer is loaded once per
process (the sentence encoder underneath takes a second or two).
"""

from __future__ import annotations

import logging
import threading
import zipfile
from functools import lru_cache
from pathlib import Path

from grader.models import Question
from ml.marking import Learned
from ml.scorer import Scorer, scorer_load

from .selectors import exam_scorer

logger = logging.getLogger(__name__)


def question_scorer(*, question: Question) -> Learned | None:
    """The learned scorer offered for ``question``: the newest kept for its exam, when ``question`` is
    among those it was offered for; None otherwise."""
    found = exam_scorer(exam_id=question.exam_id)
    if found is None or question.pk not in found[1]:
        return None
    try:
        scorer = _scorer_loaded(str(found[0]))
    except Exception:  # a damaged file costs the learned suggestions, never the suggestions
        logger.exception("The learned scorer %s cannot be loaded; suggesting without it", found[0])
        return None
    return scorer_for_question(scorer=scorer, question=question)


def scorer_for_question(*, scorer: Scorer, question: Question) -> Learned:
    key = tuple(text for text in (question.answer, *question.accept) if text.strip())
    return lambda texts: scorer.shares(question=question.label, key=key, texts=texts)


_scorer_lock = threading.Lock()


@lru_cache(maxsize=4)
def _scorer_loaded(archive: str) -> Scorer:
    """The scorer in ``archive`` (the zip ``services.reader_learn_run`` keeps), unpacked beside it once per process."""
    folder = Path(archive).with_suffix("")
    with _scorer_lock:
        if not (folder / "scorer.json").exists():
            with zipfile.ZipFile(archive) as packed:
                packed.extractall(folder)
    return scorer_load(path=folder, device="cpu")

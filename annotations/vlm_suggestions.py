"""Answer boxes suggested by the VLM (seed 004: HG-Bench's prompt, read by the evaluator's rules) beside the ink's.

Runs on a ``vlm`` worker (``tasks.vlm_box_suggestions_compute_task``) with the reading engine's model
(``settings.VLM_MODEL_PATH``, loaded once per worker). Suggestions are stored with source "vlm" and
shown in the box editor with the ink's; boxes are template px at 150 dpi.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from grader.models import Exam
from ml.alignment import scan_rectify
from ml.box_suggest_vlm import SOURCE, BoxGenerateFn, VlmBoxConfig, boxes_suggest_vlm, hf_box_generate

from .services import box_suggestion_scripts, box_suggestions_store

logger = logging.getLogger(__name__)


def vlm_box_generator() -> BoxGenerateFn:
    """The configured Qwen2.5-VL (the reading engine's, shared in this worker) as a ``BoxGenerateFn``."""
    if not settings.VLM_MODEL_PATH:
        raise ImproperlyConfigured("VLM box suggestions need VLM_MODEL_PATH")
    from grader.reading.services import VLM, engine_get

    return hf_box_generate(engine_get(VLM).load())


def vlm_box_suggestions_compute(*, exam_id: int, generate: BoxGenerateFn | None = None,
                                config: VlmBoxConfig = VlmBoxConfig()) -> int:
    """Ask the VLM about up to ``config.scripts`` complete aligned scripts (pages in the template frame) and
    store its boxes as pending suggestions, replacing its earlier pending ones; returns how many were stored.

    ``generate`` defaults to the configured model (``vlm_box_generator``).
    """
    exam = Exam.objects.get(pk=exam_id)
    scripts = box_suggestion_scripts(exam=exam, pages=exam.template_pages.count(), limit=config.scripts)
    found = []
    if scripts:
        rectified = [[scan_rectify(scan=image, alignment=alignment) for image, alignment in script]
                     for script in scripts]
        found = boxes_suggest_vlm(scripts=rectified, generate=generate or vlm_box_generator(), config=config)
    else:
        logger.info("Exam %s: no complete aligned script for the VLM to look at", exam.pk)
    return box_suggestions_store(exam=exam, found=found, sources=[SOURCE])

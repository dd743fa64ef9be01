"""``python manage.py training_data_export --exam ID [--exam ID ...] --out DIR [--ratio 0.8 0.1 0.1] [--seed 0]``.

Writes every answer whose text a teacher vouched for (typed it, or scored it as the key answer its ink
fits) as training data: page records for the VLM (seed 000's format, with LLaMA-Factory's
``dataset_info.json``) and answer crops for the CPU reader, split by script. The format is
``ml.training_data``'s; ``python -m ml.ocr_train --data DIR`` and ``python -m ml.train`` read it. Answers
scored on a rubric go to ``rubric/*.jsonl`` (``ml.rubric``'s format) for ``python -m ml.train_rubric``.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from grader.learning.services import training_data_export
from grader.models import Exam


class Command(BaseCommand):
    help = "Export teacher-confirmed answers as training data (page records and answer crops), split by script."

    def add_arguments(self, parser):
        parser.add_argument("--exam", type=int, action="append", required=True, dest="exams", metavar="ID",
                            help="An exam to export (repeat for several).")
        parser.add_argument("--out", type=Path, required=True, help="Folder to write into (created if missing).")
        parser.add_argument("--ratio", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST"),
                            help="Shares of scripts for train, validation and test (default 0.8 0.1 0.1).")
        parser.add_argument("--seed", type=int, default=0, help="Seed of the split by script.")

    def handle(self, *args, exams: list[int], out: Path, ratio, seed: int, **options):
        found = list(Exam.objects.filter(pk__in=exams))
        missing = sorted(set(exams) - {exam.pk for exam in found})
        if missing:
            raise CommandError(f"There is no exam {', '.join(map(str, missing))}.")
        if out.exists() and not out.is_dir():
            raise CommandError(f"{out} exists and is not a folder.")
        if any(value < 0 for value in ratio) or sum(ratio) <= 0:
            raise CommandError("--ratio takes three shares >= 0 that do not all equal 0.")
        summary = training_data_export(exams=found, out=out, ratios=tuple(ratio), seed=seed)
        total = sum(summary.answers.values())
        if total == 0:
            self.stderr.write("No answer has a text a teacher confirmed: nothing to learn from yet.")
        self.stdout.write(
            "Exported " + ", ".join(f"{split}: {summary.scripts[split]} scripts, {summary.pages[split]} pages, "
                                    f"{summary.answers[split]} answers" for split in summary.answers)
            + f" into {out}."
        )
        rubric = summary.rubric_answers or {}
        if any(rubric.values()):
            self.stdout.write("Rubric-scored answers (rubric/*.jsonl, for python -m ml.train_rubric): "
                              + ", ".join(f"{split}: {count}" for split, count in rubric.items()) + ".")

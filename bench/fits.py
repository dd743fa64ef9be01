"""How well the key explains each answer's ink, by kind of answer: the table behind ``ml.marking.FIT_MAX_GAP``.

    python bench/fits.py [--demo DIR] [--students 30] [--seed 7]

Builds a demo exam (``ml.demo_data``) unless ``--demo`` names a built one, reads every answer box (the
truth's ``scan_box``) with the EasyOCR engine as the app does (number boxes with the number character
set, ID boxes in the roster's alphabet), and fits the key's answers to each non-blank answer's frames (``ml.recognition.fit``). For each
kind of answer (word, number, sentence) it prints the gaps (nats per character) of right answers
(``correct`` and ``misspelt``) and of wrong ones, and at the threshold in force how many right answers
fit their key (saved work) and how many wrong ones do (false accepts, which must stay near 0).
Then the same for identity: the lead in nats of each script's right student over the runner-up, and
the name gap, against the best wrong student when the right one is taken off the roster.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import openpyxl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.demo_data import FULL_MARK_KINDS, QUESTIONS, DemoConfig, demo_build  # noqa: E402
from ml.identity import IdentityConfig, RosterEntry, WrittenIdentity, id_alphabet, identity_match  # noqa: E402
from ml.marking import FIT_MAX_GAP, answer_kind, number_forms  # noqa: E402
from ml.pages import document_pages  # noqa: E402
from ml.recognition.base import Region  # noqa: E402
from ml.recognition.fit import frames_fit  # noqa: E402
from ml.recognition.ocr import OcrConfig, OcrRecognizer  # noqa: E402

FIELDS = {"NAME": ("name", "name"), "ID": ("text", "id"), "CLASS": ("text", "class")}


def _quantiles(values: list[float]) -> str:
    if not values:
        return "none"
    q = np.percentile(values, [0, 25, 50, 75, 100])
    return " / ".join(f"{v:.2f}" for v in q)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path)
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    folder = args.demo or Path(tempfile.mkdtemp(prefix="markdesk-bench-fits-"))
    if args.demo is None:
        demo_build(out_dir=folder, config=DemoConfig(students=args.students, seed=args.seed))
    truth = json.loads((folder / "truth.json").read_text())
    pages = list(document_pages(path=folder / "scans.pdf", kind="pdf", max_pixels=10**9, dpi=150))
    engine = OcrRecognizer(OcrConfig(threads=1))
    rows = openpyxl.load_workbook(folder / "roster.xlsx").active.iter_rows(min_row=2, values_only=True)
    roster = [RosterEntry(student_id=row[0], name=row[1], class_name=row[2] or "") for row in rows if row[0]]
    questions = {q.label: q for q in QUESTIONS}
    kinds = {label: answer_kind(answers=[q.answer, *q.accept]) for label, q in questions.items()}

    gaps: dict[str, dict[bool, list[float]]] = defaultdict(lambda: {True: [], False: []})
    written = []
    for number, script in enumerate(truth["scripts"]):
        by_page = defaultdict(list)
        for record in script["fields"] + script["answers"]:
            by_page[script["scan_pages"][record["template_page"]]].append(record)
        frames = {}
        texts = {}
        for page, records in by_page.items():
            regions = [Region(index=i, bbox=tuple(r["scan_box"]),
                              kind=FIELDS[r["label"]][0] if r["label"] in FIELDS
                              else ("number" if kinds[r["label"]] == "number" else "text"),
                              allowlist=id_alphabet(roster=roster) if r["label"] == "ID" else None)
                       for i, r in enumerate(records)]
            for reading in engine.read_page(page=pages[page], regions=regions):
                record = records[reading.index]
                texts[record["label"]] = reading.text
                if reading.frames is not None:
                    frames[record["label"]] = reading.frames
        for record in script["answers"]:
            if record["blank"] or record["label"] not in frames:
                continue
            question, kind = questions[record["label"]], kinds[record["label"]]
            key = [question.answer, *question.accept]
            key += [form for text in key for form in number_forms(text)]
            answer_frames = frames[record["label"]]
            if kind == "number":
                answer_frames = answer_frames.spaces_as_gaps()
            best = min(fit.gap for fit in frames_fit(frames=[answer_frames], candidates=[key])[0])
            gaps[kind][record["kind"] in FULL_MARK_KINDS].append(best)
        written.append(WrittenIdentity(
            script=number, name=texts.get("NAME"), student_id=texts.get("ID"), class_name=texts.get("CLASS"),
            frames={FIELDS[label][1]: f for label, f in frames.items() if label in FIELDS}))

    print(f"{len(truth['scripts'])} scripts; gaps in nats per character, min / 25% / median / 75% / max")
    for kind in ("word", "number", "sentence"):
        right, wrong = gaps[kind][True], gaps[kind][False]
        limit = FIT_MAX_GAP[kind]
        print(f"{kind:<9} limit {limit:.1f}: right answers fit {sum(g <= limit for g in right)}/{len(right)}, "
              f"wrong ones {sum(g <= limit for g in wrong)}/{len(wrong)}")
        print(f"          right {_quantiles(right)}")
        print(f"          wrong {_quantiles(wrong)}")

    expected = [script["student_id"] for script in truth["scripts"]]
    result = identity_match(written=written, roster=roster)
    confident = [m for m in result.matches if m.confident]
    wrong = sum(m.student_id != expected[m.script] for m in confident)
    leads = [m.fit for m in result.matches if m.fit is not None and m.student_id == expected[m.script]]
    print(f"identity: {len(confident)}/{len(written)} confident, {wrong} wrong; "
          f"right student's lead {_quantiles(leads)} nats (needs {IdentityConfig().fit_margin})")
    missing = 0
    for number, student in enumerate(expected):
        without = [entry for entry in roster if entry.student_id != student]
        missing += identity_match(written=written, roster=without).matches[number].confident
    print(f"identity with each script's student taken off the roster: {missing} confident (must be 0)")


if __name__ == "__main__":
    main()

"""The machine's help on the demo exam, measured the way ``grade_folder --replay`` measures it.

    python bench/replay.py [--demo DIR] [--students 30] [--seed 7] [--keep] [--learn-after K]

Builds a demo exam (``ml.demo_data``) unless ``--demo`` names a built one (its ``truth.json`` is needed),
writes the teacher of that build (``ml.demo_data.teacher_file``: full marks for right and misspelt
answers, the text as written) and runs ``manage.py grade_folder DIR --out OUT --replay TEACHER.json`` on
a throwaway ``MARKDESK_VAR_DIR`` (SQLite). Prints:

* identity: scripts matched to the right student automatically, and wrongly (must stay 0);
* agreement: suggested score equal to the teacher's, before any teacher score, and as met by the
  replayed teacher (suggestions learn from each save);
* keystrokes per graded answer, groups scored and passed;
* CER of non-blank answers: the text used (fits included) and the engine's own reading;
* per question: answers, keystrokes, agreement;
* with ``--learn-after K``: the reader fine-tuned on the teacher's corrections of the first K scripts,
  the learned scorer's cross-validation (where it is used), and CER and agreement on the other scripts
  before and after (``learning.json``); the figures above
  are then those of the first K scripts.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, help="a demo folder built by ml.demo_data (with truth.json)")
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--learn-after", type=int, help="learn from the teacher's corrections on the first K scripts")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="markdesk-bench-replay-"))
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "MEDIA_ROOT"):
        os.environ.pop(name, None)
    os.environ.update(DJANGO_SETTINGS_MODULE="grader.settings", DEBUG="1", MARKDESK_VAR_DIR=str(work / "var"))
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django
    from django.core.management import call_command

    from ml.demo_data import DemoConfig, demo_build, teacher_file

    try:
        folder = args.demo
        if folder is None:
            folder = work / "demo"
            demo_build(out_dir=folder, config=DemoConfig(students=args.students, seed=args.seed))
        truth = json.loads((folder / "truth.json").read_text())
        teacher = work / "teacher.json"
        teacher.write_text(json.dumps(teacher_file(truth=truth)))
        django.setup()
        call_command("migrate", verbosity=0, interactive=False)
        from grader.models import User

        User.objects.create_superuser("bench", password="bench-password-unused")
        out = work / "out"
        started = time.monotonic()
        call_command("grade_folder", str(folder), out=out, replay=teacher, learn_after=args.learn_after,
                     stdout=io.StringIO())
        seconds = time.monotonic() - started
        results = json.loads((out / "results.json").read_text())
        replay = json.loads((out / "replay.json").read_text())
        expected = {tuple(script["scan_pages"]): script["student_id"] for script in truth["scripts"]}
        matched = [(script["student_id"], expected.get(tuple(script["pages"]))) for script in results["scripts"]]
        right = sum(found == true for found, true in matched if found)
        wrong = sum(found != true for found, true in matched if found)
        print(f"demo: {len(matched)} scripts, {replay['answers']} answers; grade_folder with replay {seconds:.0f} s")
        print(f"identity: {right}/{len(matched)} matched to the right student automatically, {wrong} wrong")
        print(f"agreement: {replay['agreement_before_teacher']} before any teacher score, "
              f"{replay['agreement_when_reached']} as met by the teacher")
        print(f"keystrokes per answer: {replay['keystrokes_per_answer']} "
              f"(groups scored {replay['groups']['scored']}, passed {replay['groups']['passed']})")
        print(f"CER of non-blank answers: {replay['cer']} (the engine's own reading: {replay['cer_read']})")
        if args.learn_after:
            learning = json.loads((out / "learning.json").read_text())
            reader, before, after = learning["reader"], learning["before"], learning["after"]
            print(f"learning after {args.learn_after} scripts: {reader['train_lines']} lines learned, held-out CER "
                  f"{reader['cer_before']} -> {reader['cer_after']} ({'kept' if reader['improved'] else 'not kept'}, "
                  f"{reader['seconds']} s)")
            print(f"  the other {len(matched) - args.learn_after} scripts: CER {before['cer']} -> {after['cer']} "
                  f"(engine's own reading {before['cer_read']} -> {after['cer_read']}), agreement "
                  f"{before['agreement']} -> {after['agreement']}; keystrokes per answer grading them "
                  f"{learning['replay_after']['keystrokes_per_answer']}")
            scorer = reader.get("scorer")
            if scorer:
                used = [label for label, row in scorer["questions"].items() if row["offered"]]
                print(f"  learned scorer: {scorer['answers']} scored answers, {scorer['folds']}-fold; used on "
                      f"{', '.join(used) or 'no question'}; held-out answers matching the teacher with / without it: "
                      + ", ".join(f"{label} {row['with']}/{row['without']} of {row['answers']}"
                                  for label, row in scorer["questions"].items()))
        for label, figures in replay["per_question"].items():
            print(f"  {label:<4} {figures['answers']:>3} answers  {figures['keystrokes']:>3} keys  "
                  f"agreement {figures['agreement_before_teacher']} -> {figures['agreement_when_reached']}")
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Every command README.md gives is run as written: the fenced shell blocks and the `python …`, `make …`
and `manage.py …` spans of its text, on a fresh embedded default (a new var/ folder, no settings).

Placeholders (DIR, OUT, FILE.zip, USERNAME…) get real values and optional ``[--flag VALUE]`` parts are
left out; what is left is the README's own text. Commands that would train a model, need weights or a
GPU, or run for minutes are run with ``--help`` (their arguments still have to exist: argparse refuses
an unknown one). ``make run`` / ``make test`` and the like are skipped with the reason listed. A command
README gains that this file does not know fails the test, so the list cannot fall behind.

Commands run from a scratch folder that links to the project's code, so their relative outputs
(``--out scores.json``) land there and not in the working tree.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

# Prefix of a command -> how it is run: "run" (as written), "help" (only its --help, and why), "skip" (why).
RUN, HELP, SKIP = "run", "help", "skip"
PLAN: dict[str, tuple[str, str]] = {
    "make run": (SKIP, "installs system packages and starts a server that runs until Ctrl+C"),
    "make test": (SKIP, "is the whole suite this test is part of"),
    "make install": (SKIP, "installs packages (pip, apt); the test environment is that installation"),
    ". .venv/bin/activate": (SKIP, "changes the calling shell; the commands here run with the venv's Python"),
    "python -m ml.demo_data": (RUN, ""),
    "python manage.py demo": (HELP, "reads a 28-student exam with EasyOCR (minutes)"),
    "python manage.py grade_folder": (
        HELP, "reads a whole exam (minutes); tests/grader/test_settings.py runs it as written on a small folder"),
    "python manage.py training_data_export": (RUN, ""),
    "python manage.py exam_backup": (RUN, ""),
    "python manage.py exam_restore": (RUN, ""),
    "python manage.py api_token": (RUN, ""),
    "python manage.py axes_reset_username": (RUN, ""),
    "manage.py check --deploy": (SKIP, "needs the production settings; tests/grader/test_settings.py runs it with docker's"),
    "python bench/replay.py": (HELP, "grades the demo exam twice over (minutes)"),
    "python bench/suggestions.py": (HELP, "needs Qwen2.5-VL weights"),
    "python -m ml.dataset_stats": (RUN, ""),
    "python -m ml.ocr_train": (HELP, "fine-tunes EasyOCR (minutes)"),
    "python -m ml.train": (HELP, "fine-tunes Qwen2.5-VL: needs its weights and a GPU"),
    "python -m ml.vlm_merge": (HELP, "needs Qwen2.5-VL weights and an adapter"),
    "python -m ml.box_suggest_vlm": (HELP, "needs Qwen2.5-VL weights"),
    "python -m ml.grounding_eval": (HELP, "its files come from a clone of hg-bench/hg-bench.github.io, not shipped"),
    "python -m ml.train_rubric": (HELP, "fine-tunes the rubric model: needs its weights and a GPU"),
    "python -m ml.evaluate_rubric": (HELP, "needs a trained rubric model"),
    "python bench/rubric.py": (HELP, "times a training step of a 7B model on a GPU"),
    "python manage.py work_recover": (RUN, ""),
    "make test-services": (SKIP, "needs PostgreSQL and Redis; it is part of make test"),
}
# README's DIR is the demo folder for ml.demo_data and grade_folder, and the training-data folder here.
FOLDERS = {"python manage.py training_data_export": {"DIR": "training"}, "python -m ml.dataset_stats": {"DIR": "training"}}
# The order they run in: the demo folder first; an exam is made from it (_fresh_exam) before the
# commands that take a user or an exam.
ORDER = ["python -m ml.demo_data", "python manage.py api_token", "python manage.py axes_reset_username",
         "python manage.py exam_backup", "python manage.py exam_restore", "python manage.py training_data_export",
         "python -m ml.dataset_stats", "python manage.py work_recover"]


def readme_commands(text: str) -> list[str]:
    """The commands README ``text`` gives: each line of its sh/bash blocks (continuations joined), and
    each inline code span that starts like a command; whitespace made single spaces."""
    commands = []
    for block in re.findall(r"^```(?:sh|bash|shell)\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line:
                commands.append(" ".join(line.split()))
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    for span in re.findall(r"`([^`]+)`", prose):
        span = " ".join(span.split())
        # "`python manage.py training_data_export ...`" points back at a command given in full elsewhere.
        if span.endswith(" ...") or span.endswith(" …"):
            continue
        if re.match(r"(python|make|manage\.py|\. \.venv)\b", span) or span.startswith(". .venv"):
            commands.append(span)
    return list(dict.fromkeys(commands))


def _plan_of(command: str) -> tuple[str, str, str]:
    """(prefix, how, why) for a README command; fails for one this file does not know."""
    for prefix, (how, why) in PLAN.items():
        if command == prefix or command.startswith(prefix + " "):
            return prefix, how, why
    raise AssertionError(f"README gives a command this test does not know how to run: {command!r}")


def as_written(command: str, values: dict[str, str]) -> list[str]:
    """The command's words with optional ``[…]`` parts dropped and each placeholder word replaced by
    its value (a placeholder is a word of capitals, digits, dots and underscores: DIR, FILE.zip)."""
    command = re.sub(r"\s*\[[^\]]*\]", "", command)
    words = shlex.split(command)
    return [values.get(word, word) for word in words]


class Scratch(NamedTuple):
    """Where README's commands run: a folder linking to the project, and a fresh embedded default's
    environment (its own var/, none of the settings a server or the suite sets)."""

    cwd: Path
    environment: dict[str, str]


@pytest.fixture
def scratch(tmp_path) -> Scratch:
    work = tmp_path / "work"
    work.mkdir()
    for name in ("manage.py", "grader", "annotations", "ml", "templates", "static", "bench"):
        (work / name).symlink_to(ROOT / name)
    server_settings = {"DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "SECRET_KEY",
                       "DJANGO_SETTINGS_MODULE", "DEBUG"}
    environment = {key: value for key, value in os.environ.items() if key not in server_settings}
    environment.update(MARKDESK_VAR_DIR=str(tmp_path / "var"), PYTHONPATH=str(ROOT))
    return Scratch(cwd=work, environment=environment)


def _run(words: list[str], scratch: Scratch, *, timeout: int = 300) -> subprocess.CompletedProcess:
    """``words`` run in ``scratch``; README's ``python`` is the Python running the tests (the venv's)."""
    if words[0] == "python":
        words = [sys.executable, *words[1:]]
    return subprocess.run(words, cwd=scratch.cwd, env=scratch.environment, capture_output=True, text=True,
                          timeout=timeout)


def test_readme_lists_commands_and_each_is_known_here():
    commands = readme_commands(README.read_text())

    assert "python manage.py grade_folder DIR --out OUT [--owner USERNAME] [--engine easyocr|vlm]" in commands
    assert "make run" in commands
    for command in commands:
        _plan_of(command)


def test_a_command_readme_gains_without_a_plan_is_refused():
    with pytest.raises(AssertionError, match="does not know"):
        _plan_of("python manage.py something_new DIR")


def test_every_readme_command_runs_as_written_on_a_fresh_embedded_default(scratch, tmp_path):
    commands = readme_commands(README.read_text())
    values = {
        "DIR": str(tmp_path / "demo"), "OUT": str(tmp_path / "out"), "MODEL": str(tmp_path / "model"),
        "FILE.zip": str(tmp_path / "backup.zip"), "USERNAME": "hannah", "NAME": "readme-test",
        "EXAM_ID": "1", "ID": "1", "ADDRESS": "127.0.0.1", "FILE.jsonl": str(tmp_path / "combined.jsonl"),
        "PAGE.png...": str(tmp_path / "page.png"),
    }
    skipped, helped, ran = [], [], []

    def run_planned(command: str) -> None:
        prefix, how, why = _plan_of(command)
        if how == SKIP:
            skipped.append(f"{command}: {why}")
            return
        if how == HELP:
            words = shlex.split(prefix) + ["--help"]
            result = _run(words, scratch, timeout=120)
            assert result.returncode == 0, f"{' '.join(words)}\n{result.stderr[-2000:]}"
            assert "usage:" in result.stdout.lower(), result.stdout[:500]
            # Every --flag README writes for it is one the command takes.
            for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", command):
                assert flag in result.stdout, f"README gives {flag} to {prefix}, whose --help does not list it"
            helped.append(f"{command}: --help only, {why}")
            return
        words = as_written(command, {**values, **{k: str(tmp_path / v) for k, v in FOLDERS.get(prefix, {}).items()}})
        result = _run(words, scratch)
        assert result.returncode == 0, f"{command} as {words} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        ran.append(command)

    # A fresh embedded default: the database made, one teacher, and one exam with a scored answer (from
    # the demo folder the README's own `python -m ml.demo_data --out DIR` writes), for the commands that
    # take an exam.
    in_order = sorted(commands, key=lambda c: next((i for i, p in enumerate(ORDER) if c.startswith(p)), -1))
    for command in in_order:
        if command.startswith("python manage.py api_token"):
            _fresh_exam(scratch, demo=Path(values["DIR"]))
        run_planned(command)

    assert (tmp_path / "demo" / "scans.pdf").is_file()
    assert (tmp_path / "backup.zip").is_file()
    assert (tmp_path / "training" / "stats").is_dir()
    print("Ran as written:", *ran, "Only --help:", *helped, "Skipped:", *skipped, sep="\n  ")
    assert len(ran) >= 8


def _fresh_exam(scratch: Scratch, *, demo: Path) -> None:
    """Migrate the fresh database and add teacher "hannah" with exam 1: the demo folder's roster, key,
    blank exam and boxes (no scans, no reading: fast)."""
    script = f"""
from pathlib import Path
from django.core.files import File
from annotations import services as boxes
from grader import services
from grader.models import Department, Exam, User
demo = Path({str(demo)!r})
teacher = User.objects.create_user("hannah", password="a-long-password", department=Department.objects.create(name="Science"))
exam = Exam.objects.create(title="README", owner=teacher, department=teacher.department, pages_per_script=2)
with (demo / "roster.xlsx").open("rb") as f: services.roster_import(exam=exam, file=File(f, name="roster.xlsx"))
with (demo / "answers.xlsx").open("rb") as f: services.answer_key_import(exam=exam, file=File(f, name="answers.xlsx"))
with (demo / "template.pdf").open("rb") as f: services.template_upload(exam=exam, file=File(f, name="template.pdf"))
boxes.boxes_import(exam=exam, fmt="annotations", data=(demo / "annotations.json").read_bytes(), user=teacher)
print(exam.pk)
"""
    migrate = _run(["python", "manage.py", "migrate", "--noinput"], scratch)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    made = _run(["python", "manage.py", "shell", "-c", script], scratch)
    assert made.returncode == 0 and made.stdout.strip().endswith("1"), made.stdout + made.stderr[-3000:]

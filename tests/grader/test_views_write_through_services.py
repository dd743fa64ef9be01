"""No view writes a model itself: every change goes through a service, which takes the exam's lock,
keeps the history and re-suggests what the change affects."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VIEWS = sorted(path for package in ("grader", "annotations") for path in (ROOT / package).rglob("*views.py"))
WRITES = {"save", "delete", "create", "update", "bulk_create", "bulk_update", "get_or_create", "update_or_create"}


def writes_in(source: str) -> list[str]:
    """``line: call`` for each call of a model-writing method (``form.save()``, ``x.objects.create()``...)."""
    return [
        f"{node.lineno}: {ast.unparse(node.func)}()"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITES
    ]


@pytest.mark.parametrize("path", VIEWS, ids=[str(path.relative_to(ROOT)) for path in VIEWS])
def test_views_write_nothing_themselves(path):
    assert writes_in(path.read_text()) == []


def test_the_check_sees_a_form_saved_and_a_record_deleted_in_a_view():
    source = "def edit(request):\n    form.save()\n    student.delete()\n    Exam.objects.filter(pk=1).update(title='x')\n"

    assert writes_in(source) == ["2: form.save()", "3: student.delete()", "4: Exam.objects.filter(pk=1).update()"]

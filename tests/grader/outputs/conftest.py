"""An exam with scores, made directly in the database (no OCR): what every output is made from."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from model_bakery import baker

from annotations.models import AnswerBox
from grader.models import Question, ScanPage, ScanUpload, Script, Student
from grader.reading.models import Answer
from tests.conftest import layout_page

# label, max score, (template page, box [x1, y1, x2, y2] in template px at 150 dpi)
QUESTIONS = (
    ("Q1", Decimal("2"), 0, (150, 700, 1000, 820)),
    ("Q2", Decimal("1"), 0, (150, 1000, 1000, 1120)),
    ("Q3", Decimal("3"), 1, (150, 400, 1000, 600)),
)
# name, ID, class, email, teacher scores for Q1-Q3 (None: only the suggestion below), blank Q3
STUDENTS = (
    ("Ada Lovelace", "S1", "9A", "ada@example.org", ("2", "1", "3")),
    ("Ben Okafor", "S2", "9A", "ben@example.org", ("1.5", "1", "2")),
    ("Chloe Martin", "S3", "9B", "", ("1", "0", "2")),
    ("Dev Patel", "S4", "9B", "dev@example.org", ("0.5", None, "1")),
    ("Eva Rossi", "S5", "9A", "eva@example.org", ("0", "0", "0")),
    ("Femi Adeyemi", "S6", "9B", "femi@example.org", ("2", "1", "1")),
    ("Gus Absent", "S7", "9B", "gus@example.org", None),
)
SUGGESTED = Decimal("1")


def _jpeg(image) -> bytes:
    buffer = io.BytesIO()
    image.convert("L").save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


@pytest.fixture
def scored_exam(exam, teacher):
    """``exam`` with 3 questions (Q1 2 marks and Q2 1 mark on template page 1, Q3 3 marks on page 2),
    7 students (S7 absent; S3 has no email address) and 6 two-page scripts, one per other student.

    Totals out of 6: S1 6, S2 4.5, S3 3, S4 2.5 (Q2 only suggested: 1 mark), S5 0 (Q3 blank), S6 4.
    Every answer has its page and crop (scan px), as reading leaves them.
    """
    exam.classes = "9A, 9B"
    exam.save()
    questions = [
        baker.make(Question, exam=exam, label=label, order=order, answer=f"key {label}", max_score=top)
        for order, (label, top, _, _) in enumerate(QUESTIONS, start=1)
    ]
    for question, (_, _, page, box) in zip(questions, QUESTIONS):
        AnswerBox.objects.create(exam=exam, page=page, label=question.label, question=question,
                                 x1=box[0], y1=box[1], x2=box[2], y2=box[3])
    upload = baker.make(ScanUpload, exam=exam, original_name="scans.pdf", sha256="0" * 64, kind="pdf",
                        status=ScanUpload.Status.DONE)
    images = [_jpeg(layout_page(1)), _jpeg(layout_page(2))]
    number = 0
    for name, student_id, class_name, email, scores in STUDENTS:
        student = Student.objects.create(exam=exam, student_id=student_id, name=name, class_name=class_name, email=email)
        if scores is None:
            continue
        number += 1
        script = Script.objects.create(exam=exam, number=number, student=student)
        pages = []
        for position, image in enumerate(images):
            page = ScanPage(exam=exam, upload=upload, source_index=2 * (number - 1) + position, script=script,
                            position=position, template_index=position, width=1240, height=1754)
            page.image.save(f"s{number}p{position}.jpg", ContentFile(image), save=False)
            page.save()
            pages.append(page)
        for question, (_, _, page_index, box), score in zip(questions, QUESTIONS, scores):
            blank = student_id == "S5" and question.label == "Q3"
            Answer.objects.create(
                script=script, question=question, page=pages[page_index], crop=list(box), blank=blank,
                text="" if blank else f"answer {student_id} {question.label}", read_at=timezone.now(),
                readings={"easyocr": {"text": f"answer {student_id} {question.label}", "confidence": 0.9}},
                similarity=0.0 if blank else 0.7, suggested_score=Decimal(0) if blank else SUGGESTED,
                score=None if score is None else Decimal(score),
                scored_by=None if score is None else teacher, scored_at=None if score is None else timezone.now(),
            )
    return exam

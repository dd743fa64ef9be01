"""Question labels read one way everywhere: the answer key's import and form, and the box editor."""

from __future__ import annotations

import pytest

from annotations import services as box_services
from grader import services
from grader.labels import QUESTION_LABEL_PATTERN, question_label_normalise
from tests.conftest import xlsx_upload


@pytest.mark.parametrize(("written", "label"), [("1", "Q1"), (" 07 ", "Q7"), ("q3", "Q3"), ("q3b", "Q3b"),
                                                ("Q12", "Q12"), ("Part A", "Part A"), ("1.5", "1.5"), ("", "")])
def test_a_label_is_read_as_a_teacher_means_it(written, label):
    assert question_label_normalise(written) == label


def test_the_label_rule_takes_letters_digits_and_a_few_marks_up_to_32_characters():
    assert QUESTION_LABEL_PATTERN.fullmatch("Q2a (ii)")
    assert not QUESTION_LABEL_PATTERN.fullmatch("Q2;drop")
    assert not QUESTION_LABEL_PATTERN.fullmatch("Q" * 33)


def test_a_question_numbered_3_in_the_key_is_the_box_labelled_q3(exam, teacher, template_pdf):
    services.answer_key_import(exam=exam, file=xlsx_upload([("QUESTION", "ANSWER", "MAX_SCORE"), (3.0, "Na", 1)]))
    services.template_upload(exam=exam, file=template_pdf)

    box = box_services.box_save(exam=exam, page=0, bbox=(100, 100, 400, 200), label="q3", user=teacher)

    assert box.label == "Q3" and box.question == exam.questions.get(label="Q3")

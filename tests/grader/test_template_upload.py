"""Uploading the blank exam (the template): its pages rasterised, a broken replacement refused."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from grader import services


@pytest.fixture
def exam_with_template(exam, template_pdf):
    services.template_upload(exam=exam, file=template_pdf)
    return exam


def test_the_blank_exam_is_rasterised_at_150_dpi_into_a4_pages(exam, template_pdf):
    pages = services.template_upload(exam=exam, file=template_pdf)

    assert [(page.index, page.width, page.height) for page in pages] == [(0, 1240, 1754), (1, 1240, 1754)]
    assert exam.template_pdf.name.endswith(".pdf")


def test_a_broken_replacement_template_keeps_the_old_one(exam_with_template):
    with pytest.raises(services.UploadRejected, match="not a PDF"):
        services.template_upload(
            exam=exam_with_template, file=SimpleUploadedFile("new.pdf", b"<html>not a pdf</html>")
        )

    assert exam_with_template.template_pages.count() == 2

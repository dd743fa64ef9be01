"""An answer is blank when its box holds no ink beyond what the blank exam prints there."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw, ImageFont

from annotations import services as box_services
from grader import services
from grader.scans import services as scans
from grader.reading import services as reading
from grader.reading.models import Answer
from ml.recognition.base import Reading
from tests.conftest import layout_page, pdf_upload

BOX = (200, 1500, 900, 1640)  # template pixels at 150 dpi, below the layout's printed rows
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def _template() -> Image.Image:
    page = layout_page(1)
    draw = ImageDraw.Draw(page)
    draw.rectangle(BOX, outline="black", width=3)
    # A printed unit inside the box: it must not make every answer look written.
    draw.text((BOX[2] - 110, BOX[1] + 50), "km/h", fill="black", font=ImageFont.truetype(FONT, 36))
    return page


def _scanned(page: Image.Image) -> Image.Image:
    """The page as a scanner returns it: turned 1 degree and shifted."""
    return page.rotate(1.0, resample=Image.Resampling.BICUBIC, translate=(14, -9), fillcolor="white")


class _Reader:
    name = reading.OCR

    def read_page(self, *, page, regions, lang="en"):
        return [Reading(index=region.index, text="60", confidence=0.9, engine=self.name) for region in regions]


@pytest.fixture
def exam_with_printed_box(exam, teacher, monkeypatch):
    monkeypatch.setitem(reading._engines, reading.OCR, _Reader())
    exam.pages_per_script = 1
    exam.save()
    services.template_upload(exam=exam, file=pdf_upload([_template()], name="blank.pdf"))
    box_services.box_save(exam=exam, page=0, bbox=BOX, label="Q1", user=teacher, add_question=True)
    written = _template()
    ImageDraw.Draw(written).text((BOX[0] + 40, BOX[1] + 30), "60", fill=(20, 30, 120), font=ImageFont.truetype(FONT, 60))
    intake = scans.scan_files_accept(
        exam=exam, files=[pdf_upload([_scanned(_template()), _scanned(written)])], user=teacher
    )
    scans.scan_upload_process(upload_id=intake.accepted[0].pk)
    for script in exam.scripts.all():
        reading.script_read(script_id=script.pk, engines=[reading.OCR])
    return exam


def test_a_box_with_only_its_printed_unit_is_blank(exam_with_printed_box):
    answer = Answer.objects.get(script__number=1)

    assert answer.blank and answer.text == ""


def test_handwriting_beside_the_printed_unit_is_read(exam_with_printed_box):
    answer = Answer.objects.get(script__number=2)

    assert not answer.blank and answer.text == "60"

"""The EasyOCR engine: weight checksums, finding the ink inside a printed box, and reading demo scans."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from rapidfuzz.distance import Levenshtein

from ml.demo_data import DemoConfig, demo_build
from ml.pages import document_pages
from ml.recognition.base import Reading, Region
from ml.recognition.ocr import (
    DIGITS,
    MODEL_FILES,
    ModelFileError,
    OcrConfig,
    OcrRecognizer,
    default_model_dir,
    expected_md5,
    ink_crop,
    verify_model_files,
)

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
# Measured 0.20 (case-insensitive, white space collapsed) on this build; whole-crop reading is ~0.6.
MAX_CER = 0.30


# --------------------------------------------------------------------------------------------
# Weights


def test_easyocr_table_has_the_english_models() -> None:
    from easyocr import config

    assert expected_md5("craft_mlt_25k.pth") == config.detection_models["craft"]["md5sum"]
    assert expected_md5("english_g2.pth") == config.recognition_models["gen2"]["english_g2"]["md5sum"]


def test_packaged_weights_pass_the_check() -> None:
    verify_model_files(default_model_dir())


def _model_copy(tmp_path: Path, *, tamper: str | None = None, drop: str | None = None) -> Path:
    """A model folder of symlinks to the packaged weights; ``tamper`` becomes a copy with one byte changed."""
    folder = tmp_path / "models"
    folder.mkdir()
    for name in MODEL_FILES:
        if name == drop:
            continue
        if name == tamper:
            shutil.copyfile(default_model_dir() / name, folder / name)
            with (folder / name).open("r+b") as handle:
                handle.seek(1000)
                byte = handle.read(1)
                handle.seek(1000)
                handle.write(bytes([byte[0] ^ 0xFF]))
        else:
            (folder / name).symlink_to(default_model_dir() / name)
    return folder


def test_tampered_weights_are_refused_naming_the_file(tmp_path: Path) -> None:
    folder = _model_copy(tmp_path, tamper="english_g2.pth")
    with pytest.raises(ModelFileError, match=r"english_g2\.pth.*md5"):
        verify_model_files(folder)


def test_missing_weights_are_refused_naming_the_file(tmp_path: Path) -> None:
    folder = _model_copy(tmp_path, drop="craft_mlt_25k.pth")
    with pytest.raises(ModelFileError, match=r"craft_mlt_25k\.pth.*missing"):
        verify_model_files(folder)


def test_engine_checks_the_weights_before_loading(tmp_path: Path) -> None:
    folder = _model_copy(tmp_path, tamper="english_g2.pth")
    page = _framed(text="42")
    engine = OcrRecognizer(OcrConfig(model_dir=folder))
    with pytest.raises(ModelFileError, match=r"english_g2\.pth"):
        engine.read_page(page=page, regions=[Region(0, FRAME)])


# --------------------------------------------------------------------------------------------
# Ink inside a printed frame

FRAME = (100, 80, 500, 180)  # x1, y1, x2, y2; the frame's outer edge


def _framed(*, text: str = "", angle: float = 0.0, question: bool = False) -> Image.Image:
    """A scan-like page: a thin printed frame at FRAME, ``text`` written inside, maybe the question above."""
    page = Image.new("L", (640, 260), 243)
    draw = ImageDraw.Draw(page)
    draw.rectangle([FRAME[0], FRAME[1], FRAME[2] - 1, FRAME[3] - 1], outline=30, width=2)
    if question:
        draw.text((FRAME[0], FRAME[1] - 4), "Q1. What is the symbol?", font=ImageFont.truetype(FONT, 16),
                  fill=20, anchor="lb")
    if text:
        draw.text((160, 150), text, font=ImageFont.truetype(FONT, 36), fill=25, anchor="ls")
    if angle:
        page = page.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=243)
    page = page.filter(ImageFilter.GaussianBlur(0.7))
    noise = np.random.default_rng(3).normal(0, 3, (page.height, page.width))
    return Image.fromarray(np.clip(np.asarray(page, float) + noise, 0, 255).astype(np.uint8)).convert("RGB")


def _text_bbox(text: str) -> tuple[int, int, int, int]:
    box = ImageFont.truetype(FONT, 36).getbbox(text, anchor="ls")
    return 160 + box[0], 150 + box[1], 160 + box[2], 150 + box[3]


@pytest.mark.parametrize("angle", [0.0, 1.5])
def test_a_frame_without_writing_is_blank(angle: float) -> None:
    assert ink_crop(page=_framed(angle=angle), bbox=FRAME) is None


def test_a_frame_is_blank_even_when_the_box_is_a_little_off() -> None:
    page = _framed(angle=-1.0, question=True)
    for dx, dy in ((-6, -6), (6, 6), (-6, 5), (8, -8)):
        bbox = (FRAME[0] + dx, FRAME[1] + dy, FRAME[2] + dx, FRAME[3] + dy)
        assert ink_crop(page=page, bbox=bbox) is None, (dx, dy)


@pytest.mark.parametrize("angle", [0.0, 1.5])
def test_ink_box_surrounds_the_writing_and_not_the_frame(angle: float) -> None:
    found = ink_crop(page=_framed(text="Na 206", angle=angle, question=True), bbox=FRAME, pad=4)
    assert found is not None
    x1, y1, x2, y2 = found
    tx1, ty1, tx2, ty2 = _text_bbox("Na 206")
    slack = 4 + 6  # the pad, plus blur and the small rotation about the page centre
    assert abs(x1 - tx1) <= slack and abs(y1 - ty1) <= slack
    assert abs(x2 - tx2) <= slack and abs(y2 - ty2) <= slack
    # Well inside the frame: none of its lines is in the box.
    assert x1 > FRAME[0] + 3 and y1 > FRAME[1] + 3 and x2 < FRAME[2] - 3 and y2 < FRAME[3] - 3


def test_writing_touching_the_frame_is_kept() -> None:
    page = Image.new("L", (640, 260), 243)
    draw = ImageDraw.Draw(page)
    draw.rectangle([FRAME[0], FRAME[1], FRAME[2] - 1, FRAME[3] - 1], outline=30, width=2)
    draw.text((FRAME[0] + 1, 150), "4", font=ImageFont.truetype(FONT, 40), fill=25, anchor="ls")
    found = ink_crop(page=page.convert("RGB"), bbox=FRAME)
    assert found is not None
    assert found[2] - found[0] >= 15 and found[3] - found[1] >= 20


def test_a_box_outside_the_page_is_blank() -> None:
    assert ink_crop(page=_framed(text="7"), bbox=(700, 300, 800, 400)) is None


# --------------------------------------------------------------------------------------------
# Reading


class _NoModel(OcrRecognizer):
    @property
    def reader(self):  # noqa: D102 - a blank page must never load or call the model
        raise AssertionError("the model was used")


def test_blank_regions_are_answered_without_the_model() -> None:
    page = _framed(question=True)
    regions = [Region(7, FRAME, "text"), Region(3, FRAME, "digits"), Region(9, (700, 0, 800, 50))]
    readings = _NoModel().read_page(page=page, regions=regions)
    assert readings == [Reading(7, "", 1.0, "easyocr"), Reading(3, "", 1.0, "easyocr"),
                        Reading(9, None, None, "easyocr")]


def test_other_languages_leave_writing_unread() -> None:
    page = _framed(text="42")
    readings = _NoModel().read_page(page=page, regions=[Region(0, FRAME)], lang="ch")
    assert readings == [Reading(0, None, None, "easyocr")]


@pytest.fixture(scope="module")
def engine():
    import torch

    threads = torch.get_num_threads()
    recognizer = OcrRecognizer(OcrConfig(threads=1))  # one thread is fastest on a shared CPU
    recognizer.reader  # noqa: B018 - load once for the module
    yield recognizer
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[Image.Image]]:
    out = tmp_path_factory.mktemp("ocr-demo")
    truth = demo_build(out_dir=out, config=DemoConfig(students=3, absent=0, seed=5))
    pages = list(document_pages(path=out / "scans.pdf", kind="pdf", max_pixels=10**8))
    return truth, pages


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def test_demo_answers_are_read_well_and_blanks_found(engine: OcrRecognizer, demo) -> None:
    truth, pages = demo
    edits = chars = 0
    for script in truth["scripts"]:
        for template_page, scan_page in enumerate(script["scan_pages"]):
            answers = [a for a in script["fields"] + script["answers"] if a["template_page"] == template_page]
            regions = [Region(100 + i, tuple(a["scan_box"]), "name" if a["label"] == "NAME" else "text")
                       for i, a in enumerate(answers)]
            readings = engine.read_page(page=pages[scan_page], regions=regions)
            assert [r.index for r in readings] == [r.index for r in regions]
            for answer, reading in zip(answers, readings, strict=True):
                assert reading.engine == "easyocr"
                if answer.get("blank"):
                    assert (reading.text, reading.confidence) == ("", 1.0), answer["label"]
                    continue
                assert reading.text != "", answer["label"]  # written on: never called blank
                if reading.text is not None:
                    assert 0.0 <= reading.confidence <= 1.0
                edits += Levenshtein.distance(_norm(answer["text"]), _norm(reading.text or ""))
                chars += len(_norm(answer["text"]))
    assert chars > 200
    cer = edits / chars
    assert cer < MAX_CER, f"CER {cer:.3f}"


def test_digits_regions_read_only_digits(engine: OcrRecognizer, demo) -> None:
    truth, pages = demo
    read = []
    for script in truth["scripts"]:
        numeric = [a for a in script["answers"] if a["label"] in ("Q3", "Q6") and not a["blank"]]
        if not numeric:
            continue
        page = pages[script["scan_pages"][numeric[0]["template_page"]]]
        regions = [Region(i, tuple(a["scan_box"]), "digits") for i, a in enumerate(numeric)]
        for answer, reading in zip(numeric, engine.read_page(page=page, regions=regions), strict=True):
            assert reading.text and set(reading.text) <= set(DIGITS), (answer["text"], reading.text)
            read.append(reading.text == answer["text"].rstrip("C"))
    assert read and sum(read) >= len(read) // 2


class _FixedRecognizer:
    """Stands in for EasyOCR's recogniser: the same per-frame probabilities whatever the image."""

    character = "0123456789lo "
    device = "cpu"

    def __init__(self, frames: list[dict[str, float]]) -> None:
        import torch

        probs = np.full((len(frames), len(self.character) + 1), 1e-4)
        for row, peaks in enumerate(frames):
            for char, p in peaks.items():
                probs[row, 0 if char == "" else self.character.index(char) + 1] = p
        self.logits = torch.log(torch.tensor(probs / probs.sum(axis=1, keepdims=True), dtype=torch.float32))

    def recognizer(self, images, _text):
        return self.logits.expand(len(images), *self.logits.shape)


def test_a_character_the_box_may_not_hold_is_read_as_the_likeliest_one_it_may_never_dropped() -> None:
    from ml.recognition.ocr import NUMBER_CHARS, _predict_pass

    # The model reads "1oo" (its "o" frames give "0" a little); the ink is clearly three characters.
    reader = _FixedRecognizer([{"": 0.9}, {"1": 0.9}, {"": 0.9}, {"o": 0.8, "": 0.15, "0": 0.04}, {"": 0.9},
                               {"o": 0.8, "": 0.15, "0": 0.04}, {"": 0.9}])
    image = np.full((64, 120), 255, np.uint8)

    [read] = _predict_pass(reader, [image], allowlist=NUMBER_CHARS, contrast=0.0)

    assert read.text == "100"  # masking "o" alone leaves the blank likeliest there: "1"
    assert read.confidence < 0.5  # two of its digits are guesses: a person checks it
    assert read.frames.charset == reader.character


@pytest.mark.parametrize(("frames", "expected"), [
    # "60 kmh": the number box's digits garble the unit ("60 6"); with letters it is 60 km/h.
    ([{"6": 0.9}, {"": 0.9}, {"0": 0.9}, {" ": 0.9}, {"k": 0.8, "6": 0.15}, {"": 0.9}, {"m": 0.9}, {"": 0.9},
      {"h": 0.8, "4": 0.15}], "60 kmh"),
    # "1oo" is not a number with letters either: the digits' reading stands.
    ([{"1": 0.9}, {"": 0.9}, {"o": 0.8, "0": 0.15}, {"": 0.9}, {"o": 0.8, "0": 0.15}], "100"),
])
def test_a_number_box_reads_a_unit_with_letters_when_its_digits_make_no_number(frames, expected) -> None:
    class Reader(_FixedRecognizer):
        character = "0123456789hkmo "

    engine = OcrRecognizer(OcrConfig(text_allowlist="0123456789hkmo "))
    engine._reader = Reader(frames)
    page = Image.new("L", (400, 200), 255)
    ImageDraw.Draw(page).text((40, 80), "ink", fill=0, font=ImageFont.truetype(FONT, 40))

    [reading] = engine.read_page(page=page, regions=[Region(1, (20, 60, 380, 160), "number")])

    assert reading.text == expected


def test_one_reading_per_region_in_the_order_given(engine: OcrRecognizer, demo) -> None:
    truth, pages = demo
    script = truth["scripts"][0]
    answers = [a for a in script["answers"] if a["template_page"] == script["answers"][-1]["template_page"]]
    page = pages[script["scan_pages"][answers[0]["template_page"]]]
    regions = [Region(50 - i, tuple(a["scan_box"]), "text") for i, a in enumerate(answers)][::-1]
    regions.insert(1, Region(999, (5000, 5000, 5100, 5100)))  # off the page: unread
    readings = engine.read_page(page=page, regions=regions)
    assert [r.index for r in readings] == [r.index for r in regions]
    assert readings[1].text is None


def test_low_confidence_flags_unread_and_doubtful_readings() -> None:
    engine = OcrRecognizer(OcrConfig(low_confidence=0.5))
    assert engine.is_low_confidence(Reading(0, None, None, "easyocr"))
    assert engine.is_low_confidence(Reading(0, "x", 0.2, "easyocr"))
    assert not engine.is_low_confidence(Reading(0, "", 1.0, "easyocr"))

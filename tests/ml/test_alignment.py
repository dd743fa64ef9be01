"""Scanned pages are registered to their template pages, and boxes carried across land on the writing."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from ml.alignment import (
    IDENTITY,
    Alignment,
    alignment_from_dict,
    alignment_to_dict,
    box_map,
    page_align,
    scan_rectify,
)
from ml.boxes import box_iou
from ml.demo_data import HAND_FONTS, DemoConfig, demo_build
from ml.pages import document_pages

MAX_PIXELS = 50_000_000
WORDS = ("sodium", "206", "60 km/h", "gravity", "mitochondria", "ohm", "because light is faster", "3/4")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 3-student demo set: rendered template and scan pages, truth and the template boxes per page."""
    out = tmp_path_factory.mktemp("align-demo")
    truth = demo_build(out_dir=out, config=DemoConfig(students=3, absent=0, seed=21))
    annotations = json.loads((out / "annotations.json").read_text())
    return {
        "truth": truth,
        "templates": list(document_pages(path=out / "template.pdf", kind="pdf", max_pixels=MAX_PIXELS)),
        "scans": list(document_pages(path=out / "scans.pdf", kind="pdf", max_pixels=MAX_PIXELS)),
        "boxes": {int(page): [(b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"]) for b in boxes]
                  for page, boxes in annotations.items()},
    }


def _handwritten(page: Image.Image, *, boxes: list[tuple[int, int, int, int]], rng: np.random.Generator) -> Image.Image:
    """A copy of ``page`` with a few words in a handwriting font in every box, as a student fills it in."""
    filled = page.copy()
    draw = ImageDraw.Draw(filled)
    fonts = [path for path in HAND_FONTS if path.exists()]
    font = ImageFont.truetype(str(fonts[int(rng.integers(len(fonts)))]), int(rng.integers(32, 46)))
    for x1, y1, _, _ in boxes:
        draw.text((x1 + 12, y1 + 10), str(rng.choice(WORDS)), font=font, fill=(30, 40, 130))
    return filled


def _scanned(page: Image.Image, *, shift: tuple[float, float], rotation: float, scale: float,
             rng: np.random.Generator) -> tuple[Image.Image, np.ndarray]:
    """``page`` moved as a scanner might (about its centre, then shifted by ``shift`` px), with paper tint,
    blur, noise and JPEG; returns the scan and the true 2x3 template px -> scan px transform."""
    width, height = page.size
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), rotation, scale)
    matrix[:, 2] += shift
    warped = cv2.warpAffine(np.asarray(page), matrix, (width, height), flags=cv2.INTER_LINEAR,
                            borderValue=(255, 255, 255)).astype(np.float32)
    warped *= np.array([0.97, 0.96, 0.93], np.float32)
    warped = cv2.GaussianBlur(warped, (0, 0), 0.8) + rng.normal(0, 4, warped.shape[:2]).astype(np.float32)[..., None]
    buffer = io.BytesIO()
    Image.fromarray(np.clip(warped, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=int(rng.integers(55, 80)))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), matrix


def test_pages_moved_within_scanner_limits_carry_every_box_with_iou_above_0_9(demo: dict) -> None:
    rng = np.random.default_rng(2024)
    # The corners of the range first (25 px, 2 degrees, 3 %), then random draws within it.
    moves = [((25, -25), 2.0, 0.97), ((-25, 25), -2.0, 1.03)]
    moves += [(tuple(rng.uniform(-25, 25, 2)), rng.uniform(-2, 2), rng.uniform(0.97, 1.03)) for _ in range(8)]
    ious = []
    for number, (shift, rotation, scale) in enumerate(moves):
        page = number % 2
        boxes = demo["boxes"][page]
        source = demo["templates"][page]
        if number % 4 >= 2:
            source = _handwritten(source, boxes=boxes, rng=rng)
        scan, truth = _scanned(source, shift=shift, rotation=rotation, scale=scale, rng=rng)
        alignment = page_align(template=demo["templates"][page], scan=scan)
        assert alignment.ok, alignment.reason
        ious += [box_iou(box_map(bbox=box, matrix=alignment.matrix), box_map(bbox=box, matrix=truth)) for box in boxes]
    assert min(ious) >= 0.9
    assert np.mean(ious) >= 0.98


def test_demo_scans_carry_every_box_onto_its_true_scan_position(demo: dict) -> None:
    ious = []
    for script in demo["truth"]["scripts"]:
        for page in script["pages"]:
            alignment = page_align(template=demo["templates"][page["template_page"]],
                                   scan=demo["scans"][page["scan_page"]])
            assert alignment.ok, alignment.reason
            ious += [box_iou(box_map(bbox=entry["box"], matrix=alignment.matrix), entry["scan_box"])
                     for entry in script["fields"] + script["answers"]
                     if entry["template_page"] == page["template_page"]]
    assert len(ious) == 3 * 15
    assert min(ious) >= 0.9


def test_the_template_aligns_to_itself_with_the_identity(demo: dict) -> None:
    alignment = page_align(template=demo["templates"][0], scan=demo["templates"][0])
    assert alignment.ok
    np.testing.assert_allclose(alignment.matrix, IDENTITY, atol=1e-3)


def test_the_other_page_of_the_same_test_is_not_aligned(demo: dict) -> None:
    scan_of_page_1 = demo["scans"][demo["truth"]["scripts"][0]["pages"][1]["scan_page"]]
    alignment = page_align(template=demo["templates"][0], scan=scan_of_page_1)
    assert not alignment.ok
    assert alignment.matrix == IDENTITY
    assert "matching features" in alignment.reason


def test_a_page_of_another_document_is_not_aligned(demo: dict) -> None:
    page = Image.new("RGB", (1240, 1754), "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype("/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf", 22)
    rng = np.random.default_rng(3)
    words = "the of and to in is that for it as was with be by on not this are or from at which".split()
    for top in range(100, 1650, 34):
        draw.text((100, top), " ".join(rng.choice(words, 14)), font=font, fill="black")
    alignment = page_align(template=demo["templates"][0], scan=page)
    assert not alignment.ok
    assert alignment.matrix == IDENTITY


def test_a_blank_page_is_not_aligned(demo: dict) -> None:
    noise = np.random.default_rng(5).normal(0, 4, (1754, 1240, 1))
    paper = Image.fromarray(np.clip(np.array([246, 243, 236]) + noise, 0, 255).astype(np.uint8))
    alignment = page_align(template=demo["templates"][0], scan=paper)
    assert not alignment.ok
    assert alignment.reason == "nothing printed found on the page (blank?)"


@pytest.mark.parametrize("size", [(1, 1), (10, 10), (40, 1754)])
def test_a_tiny_image_is_refused_without_raising(demo: dict, size: tuple[int, int]) -> None:
    alignment = page_align(template=demo["templates"][0], scan=Image.new("L", size, 255))
    assert not alignment.ok
    assert alignment.reason.startswith("page too small to align")


def test_a_page_turned_further_than_a_scanner_would_is_refused(demo: dict) -> None:
    turned, _ = _scanned(demo["templates"][0], shift=(0, 0), rotation=11.0, scale=1.0, rng=np.random.default_rng(1))
    alignment = page_align(template=demo["templates"][0], scan=turned)
    assert not alignment.ok
    assert alignment.reason == "implausible rotation of 11.0°"
    assert alignment.inliers >= 30


def test_rotation_scale_and_shift_read_back_the_transform() -> None:
    matrix = cv2.getRotationMatrix2D((619.5, 876.5), 1.5, 1.02)
    matrix[:, 2] += (10, -5)
    alignment = Alignment(matrix=tuple(map(tuple, matrix.tolist())), inliers=100, ok=True, reason="",
                          template_size=(1240, 1754))
    assert alignment.rotation_deg == pytest.approx(1.5)
    assert alignment.scale == pytest.approx(1.02)
    assert alignment.shift == pytest.approx((10, -5))


def test_an_alignment_survives_a_trip_through_json() -> None:
    alignment = Alignment(matrix=((0.999, -0.02, 12.5), (0.02, 0.999, -7.25)), inliers=321, ok=True, reason="",
                          template_size=(1240, 1754))
    failed = Alignment(matrix=IDENTITY, inliers=4, ok=False, reason="only 4 matching features",
                       template_size=(1240, 1754))
    for original in (alignment, failed):
        assert alignment_from_dict(json.loads(json.dumps(alignment_to_dict(original)))) == original


def test_box_map_gives_the_bounds_of_the_moved_corners_clipped_to_the_page() -> None:
    shift = ((1, 0, 10.5), (0, 1, -3))
    assert box_map(bbox=(100, 200, 300, 260), matrix=shift) == (110, 197, 311, 257)
    turned = ((0, -1, 0), (1, 0, 0))  # (x, y) -> (-y, x), a quarter turn
    assert box_map(bbox=(10, 20, 30, 60), matrix=turned) == (-60, 10, -20, 30)
    assert box_map(bbox=(-40, 1700, 80, 1800), matrix=IDENTITY, page_size=(1240, 1754)) == (0, 1700, 80, 1754)


def test_scan_rectify_puts_a_scan_back_into_the_template_frame(demo: dict) -> None:
    template = demo["templates"][1]
    scan, truth = _scanned(template, shift=(18, -12), rotation=1.2, scale=1.01, rng=np.random.default_rng(9))
    alignment = Alignment(matrix=tuple(map(tuple, truth.tolist())), inliers=100, ok=True, reason="",
                          template_size=template.size)
    rectified = scan_rectify(scan=scan, alignment=alignment)
    assert rectified.size == template.size and rectified.mode == "RGB"
    before = np.asarray(template.convert("L"), dtype=np.float32).ravel()
    after = np.asarray(rectified.convert("L"), dtype=np.float32).ravel()
    unmoved = np.asarray(scan.convert("L"), dtype=np.float32).ravel()
    # Blur, noise and JPEG keep the match short of 1; the scan as it came shares almost nothing with the page.
    assert np.corrcoef(before, after)[0, 1] > 0.85
    assert np.corrcoef(before, unmoved)[0, 1] < 0.2

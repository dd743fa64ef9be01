"""Registering a scanned page to its blank template page, and carrying boxes across.

Coordinates: "template px" are pixels of the template page and "scan px" pixels of the scanned page,
both rasterised at the app's dpi (150, so an A4 page is 1240x1754 px). Pixel centres sit at integer
coordinates, as in OpenCV. Boxes are ``(x1, y1, x2, y2)`` with ``x2``/``y2`` exclusive. A transform is
an OpenCV-style 2x3 affine ``[[a, b, tx], [c, d, ty]]`` that maps template px to scan px:
``[x_scan, y_scan] = M @ [x, y, 1]``.

The page is placed from ORB features (shared with ``ml.pages.page_match``) and a RANSAC similarity
fit, then optionally refined to a full affine by ECC on a reduced page; the result is checked against
what a scanner can plausibly do to a page, so a wrong page never yields a confident, wrong transform.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from ml.pages import PageFeatures, features_fit, page_features

Matrix = tuple[tuple[float, float, float], tuple[float, float, float]]
Box = tuple[int, int, int, int]

IDENTITY: Matrix = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))

# Below this size a page holds too little to place; ORB and ECC would fail or guess.
_MIN_SIDE_PX = 64


@dataclass(frozen=True)
class AlignConfig:
    """How ``page_align`` places a page and what it accepts.

    ``template_features`` / ``scan_features``: ORB keypoints taken from each; a scan gets more because
    handwriting, with its sharp corners, takes many of them away from the print. ``ransac_px``: largest
    disagreement, in scan px, for a matched feature to count as an inlier. ``min_inliers``: fewer agreeing
    features means "not this page" (scans of the right page share 80 to several hundred, other pages of
    the same test fewer than 20). ``max_shift``: largest displacement of the page centre, as a fraction
    of the page's width (x) and height (y). ``max_rotation_deg``: largest rotation in degrees.
    ``scale_range``: smallest and largest scale along either axis (scan px per template px). ``ecc``:
    refine the feature fit with ECC (to a fifth of a pixel, and lets the two axes scale differently, as
    feeder scanners do). ``ecc_scale``: page size ECC works at, as a fraction of full size.
    ``ecc_iterations``: most ECC steps; from the feature fit it settles within a few. ``ecc_max_correction_px``:
    largest move of any page corner, in scan px, that ECC may make to the feature fit; a larger one means
    ECC latched onto something else than the print, and the feature fit is kept.
    """

    template_features: int = 1000
    scan_features: int = 3000
    ransac_px: float = 6.0
    min_inliers: int = 30
    max_shift: float = 0.08
    max_rotation_deg: float = 5.0
    scale_range: tuple[float, float] = (0.9, 1.1)
    ecc: bool = True
    ecc_scale: float = 0.35
    ecc_iterations: int = 15
    ecc_max_correction_px: float = 4.0


@dataclass(frozen=True)
class Alignment:
    """Where a template page lies on a scanned page.

    ``matrix``: 2x3 affine, template px -> scan px (identity when ``ok`` is False). ``inliers``: features
    that agree with the placement. ``ok``: whether the placement can be trusted. ``reason``: why not, for
    the teacher (empty when ``ok``). ``template_size``: ``(width, height)`` of the template page in px.
    """

    matrix: Matrix
    inliers: int
    ok: bool
    reason: str
    template_size: tuple[int, int]

    @property
    def rotation_deg(self) -> float:
        """Rotation in degrees, positive anticlockwise on screen (the sign ``cv2.getRotationMatrix2D`` uses)."""
        (a, b, _), _ = self.matrix
        return math.degrees(math.atan2(b, a))

    @property
    def scale(self) -> float:
        """Mean linear scale, scan px per template px (the square root of the area ratio)."""
        (a, b, _), (c, d, _) = self.matrix
        return math.sqrt(abs(a * d - b * c))

    @property
    def shift(self) -> tuple[float, float]:
        """``(dx, dy)`` in px: how far the template page's centre moved on the scan."""
        width, height = self.template_size
        centre = np.array([(width - 1) / 2, (height - 1) / 2, 1.0])
        moved = np.asarray(self.matrix) @ centre
        return float(moved[0] - centre[0]), float(moved[1] - centre[1])


def alignment_to_dict(alignment: Alignment) -> dict:
    """A JSON-able dict of ``alignment`` (lists for tuples), read back by ``alignment_from_dict``."""
    return {
        "matrix": [list(row) for row in alignment.matrix],
        "inliers": alignment.inliers,
        "ok": alignment.ok,
        "reason": alignment.reason,
        "template_size": list(alignment.template_size),
    }


def alignment_from_dict(data: dict) -> Alignment:
    """The ``Alignment`` that ``alignment_to_dict`` wrote."""
    return Alignment(
        matrix=_matrix_tuple(np.asarray(data["matrix"], dtype=np.float64)),
        inliers=int(data["inliers"]),
        ok=bool(data["ok"]),
        reason=str(data["reason"]),
        template_size=(int(data["template_size"][0]), int(data["template_size"][1])),
    )


def box_map(
    *,
    bbox: Sequence[float],
    matrix: Matrix | Sequence[Sequence[float]] | np.ndarray,
    page_size: tuple[int, int] | None = None,
) -> Box:
    """Carry a box across a 2x3 affine: the axis-aligned bbox of its four transformed corners.

    ``bbox`` is ``(x1, y1, x2, y2)`` in source px with x2/y2 exclusive; the result is in destination px,
    rounded outwards, and clipped to ``page_size`` ``(width, height)`` of the destination page when given.
    """
    x1, y1, x2, y2 = bbox
    corners = np.array([[x1, y1, 1.0], [x2, y1, 1.0], [x1, y2, 1.0], [x2, y2, 1.0]])
    mapped = corners @ np.asarray(matrix, dtype=np.float64).T
    left, top = math.floor(mapped[:, 0].min()), math.floor(mapped[:, 1].min())
    right, bottom = math.ceil(mapped[:, 0].max()), math.ceil(mapped[:, 1].max())
    if page_size is not None:
        width, height = page_size
        left, right = min(max(left, 0), width), min(max(right, 0), width)
        top, bottom = min(max(top, 0), height), min(max(bottom, 0), height)
    return left, top, right, bottom


def scan_rectify(*, scan: Image.Image, alignment: Alignment) -> Image.Image:
    """The scan resampled into the template frame: pixel (x, y) of the result shows template px (x, y).

    The result has the template page's size; an "L" scan gives an "L" image, any other an "RGB" one. Parts
    of the template that fall off the scan come out white.
    """
    pixels = np.asarray(scan if scan.mode == "L" else scan.convert("RGB"))
    fill = (255,) * (pixels.shape[2] if pixels.ndim == 3 else 1)
    # WARP_INVERSE_MAP reads the matrix as output -> input, which is exactly template px -> scan px.
    warped = cv2.warpAffine(
        pixels,
        np.asarray(alignment.matrix, dtype=np.float64),
        alignment.template_size,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=fill,
    )
    return Image.fromarray(warped)


def page_align(*, template: Image.Image, scan: Image.Image, config: AlignConfig = AlignConfig()) -> Alignment:
    """Place ``template`` (a blank template page) on ``scan`` (a scanned page), both at the same dpi.

    Returns the template px -> scan px transform. Never raises for a bad page: a blank, foreign or tiny
    page, or an implausible placement, gives ``ok=False``, the identity matrix and a reason.
    """
    size = (template.width, template.height)
    if min(size) < _MIN_SIDE_PX or min(scan.size) < _MIN_SIDE_PX:
        return _failed(size, inliers=0, reason=f"page too small to align ({scan.width}x{scan.height} px)")
    prepared = _template_prepare(template=template, config=config)
    scan_gray = np.asarray(scan.convert("L"))
    scan_features = page_features(Image.fromarray(scan_gray), count=config.scan_features)
    if len(scan_features.points) < config.min_inliers:
        return _failed(size, inliers=0, reason="nothing printed found on the page (blank?)")
    fit = features_fit(source=prepared.features, target=scan_features, threshold=config.ransac_px)
    if fit.matrix is None or fit.inliers < config.min_inliers:
        return _failed(size, inliers=fit.inliers, reason=f"only {fit.inliers} matching features")
    matrix = fit.matrix
    if config.ecc:
        matrix = _ecc_refine(prepared=prepared, scan=scan_gray, matrix=matrix, size=size, config=config)
    problem = _implausibility(matrix=matrix, size=size, config=config)
    if problem:
        return _failed(size, inliers=fit.inliers, reason=problem)
    return Alignment(matrix=_matrix_tuple(matrix), inliers=fit.inliers, ok=True, reason="", template_size=size)


def _failed(size: tuple[int, int], *, inliers: int, reason: str) -> Alignment:
    return Alignment(matrix=IDENTITY, inliers=inliers, ok=False, reason=reason, template_size=size)


def _matrix_tuple(matrix: np.ndarray) -> Matrix:
    (a, b, tx), (c, d, ty) = matrix.tolist()
    return (float(a), float(b), float(tx)), (float(c), float(d), float(ty))


@dataclass(frozen=True)
class _Prepared:
    """What ``page_align`` needs from a template page: its features and its page reduced for ECC."""

    features: PageFeatures
    small: np.ndarray  # float32 grey page at AlignConfig.ecc_scale
    print_mask: np.ndarray  # uint8, 255 near printed strokes of ``small``


# Every scan of an exam is aligned to the same few template pages; their features are computed once.
_PREPARED: OrderedDict[tuple, _Prepared] = OrderedDict()
_PREPARED_LIMIT = 32
_PREPARED_LOCK = threading.Lock()


def _template_prepare(*, template: Image.Image, config: AlignConfig) -> _Prepared:
    gray = np.asarray(template.convert("L"))
    digest = hashlib.blake2b(gray.tobytes(), digest_size=16).digest()
    key = (gray.shape, digest, config.template_features, config.ecc_scale)
    with _PREPARED_LOCK:
        if key in _PREPARED:
            _PREPARED.move_to_end(key)
            return _PREPARED[key]
    small = _reduce(gray, scale=config.ecc_scale)
    paper = float(np.percentile(small, 90))
    near_print = cv2.dilate((small < 0.75 * paper).astype(np.uint8) * 255, np.ones((9, 9), np.uint8))
    prepared = _Prepared(
        features=page_features(Image.fromarray(gray), count=config.template_features),
        small=small,
        print_mask=near_print,
    )
    with _PREPARED_LOCK:
        _PREPARED[key] = prepared
        if len(_PREPARED) > _PREPARED_LIMIT:
            _PREPARED.popitem(last=False)
    return prepared


def _reduce(gray: np.ndarray, *, scale: float) -> np.ndarray:
    return cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA).astype(np.float32)


def _corners(size: tuple[int, int]) -> np.ndarray:
    width, height = size
    return np.array([[0.0, 0.0, 1.0], [width, 0.0, 1.0], [0.0, height, 1.0], [width, height, 1.0]])


def _ecc_refine(
    *, prepared: _Prepared, scan: np.ndarray, matrix: np.ndarray, size: tuple[int, int], config: AlignConfig
) -> np.ndarray:
    """ECC affine refinement of ``matrix`` (template px -> scan px) on pages reduced by ``config.ecc_scale``.

    Returns ``matrix`` unchanged when ECC fails to converge or wanders further than a feature fit can be off.
    """
    scale = config.ecc_scale
    small_scan = _reduce(scan, scale=scale)
    # Conjugate into reduced-page px (see features_fit for the half-pixel offset).
    offset = 0.5 / scale - 0.5
    start = matrix.astype(np.float32).copy()
    start[:, 2] = (matrix[:, 2] - offset + matrix[:, :2] @ np.full(2, offset)) * scale
    # Handwriting has no counterpart on the template and would pull the fit towards it, so the scan is
    # blanked to paper away from the printed strokes, which the feature fit locates closely enough.
    near_print = cv2.warpAffine(prepared.print_mask, start, small_scan.shape[::-1], flags=cv2.INTER_NEAREST)
    small_scan[near_print == 0] = np.percentile(small_scan, 90)
    try:
        _, refined = cv2.findTransformECC(
            prepared.small,
            small_scan,
            start,
            cv2.MOTION_AFFINE,
            # Stop once a step improves the correlation by less than 0.001.
            (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, config.ecc_iterations, 1e-3),
            None,
            3,  # Gaussian smoothing widens thin print strokes so the search sees them from further away
        )
    except cv2.error:
        return matrix
    refined = refined.astype(np.float64)
    refined[:, 2] = refined[:, 2] / scale + offset - refined[:, :2] @ np.full(2, offset)
    corners = _corners(size)
    moved = np.abs(corners @ refined.T - corners @ matrix.T).max()
    return refined if moved <= config.ecc_max_correction_px else matrix


def _implausibility(*, matrix: np.ndarray, size: tuple[int, int], config: AlignConfig) -> str:
    """Why a scanner could not have produced ``matrix``, or "" when it could."""
    alignment = Alignment(matrix=_matrix_tuple(matrix), inliers=0, ok=True, reason="", template_size=size)
    if abs(alignment.rotation_deg) > config.max_rotation_deg:
        return f"implausible rotation of {alignment.rotation_deg:.1f}°"
    low, high = config.scale_range
    axis_scales = np.linalg.norm(matrix[:, :2], axis=0)
    for axis_scale in axis_scales:
        if not low <= axis_scale <= high:
            return f"implausible scale of {axis_scale:.2f}"
    dx, dy = alignment.shift
    width, height = size
    if abs(dx) > config.max_shift * width or abs(dy) > config.max_shift * height:
        return f"implausible shift of ({dx:.0f}, {dy:.0f}) px"
    return ""

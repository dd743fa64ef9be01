"""The recogniser interface every engine implements (EasyOCR on CPU, a Qwen2.5-VL on GPU).

Coordinates are pixels of the page image handed in (the app's pages are 150 dpi rasters), boxes are
``(x1, y1, x2, y2)`` with x2/y2 exclusive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from PIL import Image

from ml.recognition.fit import Frames

# What a region is expected to hold; engines may restrict their character set accordingly.
RegionKind = Literal["text", "digits", "number", "name"]
Lang = Literal["en", "ch"]


@dataclass(frozen=True)
class Region:
    """One box to read on a page. ``index`` is the caller's identifier, echoed in the reading."""

    index: int
    bbox: tuple[int, int, int, int]  # pixels of the page image, [x1, y1, x2, y2]
    kind: RegionKind = "text"
    # The characters the box can hold when they are known more narrowly than ``kind`` says (an ID box:
    # the characters of the roster's IDs); engines without character sets ignore it.
    allowlist: str | None = None


@dataclass(frozen=True)
class Reading:
    """What an engine read in one region.

    ``text`` is ``None`` when the engine did not answer for the region (unread), and ``""`` when it
    answered that the region is empty. ``confidence`` is in [0, 1], or ``None`` when the engine has
    no calibrated confidence. ``frames`` are a CTC engine's per-frame character log-probabilities for
    the region's ink (``ml.recognition.fit``), so candidate texts can be scored later without reading
    again; ``None`` for blank regions and for engines without them.
    """

    index: int
    text: str | None
    confidence: float | None
    engine: str
    frames: Frames | None = field(default=None, compare=False, repr=False)


class Recognizer(Protocol):
    name: str

    def read_page(self, *, page: Image.Image, regions: Sequence[Region], lang: Lang = "en") -> list[Reading]:
        """Read every region of one page; returns one reading per region, in the order given."""
        ...

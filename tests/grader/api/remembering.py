"""The real EasyOCR engine, remembering its readings so that tests do not read the same page twice."""

from __future__ import annotations

import hashlib

from grader.reading import services as reading


class RememberingEngine:
    name = reading.OCR
    memory: dict = {}

    def __init__(self, real):
        self.real = real
        self.calls = 0

    def read_page(self, *, page, regions, lang="en"):
        self.calls += 1
        key = (hashlib.sha1(page.tobytes()).hexdigest(), page.size, tuple(regions), lang)
        if key not in self.memory:
            self.memory[key] = self.real.read_page(page=page, regions=regions, lang=lang)
        return self.memory[key]


def remember_ocr(monkeypatch) -> RememberingEngine:
    """Put a remembering wrapper of the process's EasyOCR engine where ``engine_get`` finds it."""
    real = reading.engine_get(reading.OCR)
    engine = RememberingEngine(getattr(real, "real", real))
    monkeypatch.setitem(reading._engines, reading.OCR, engine)
    return engine

"""Shared fixtures: people with each role, an exam, and makers of spreadsheets, PDFs and images."""

from __future__ import annotations

import email
import email.policy
import hashlib
import io
import re
import socket
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from aiosmtpd.controller import Controller
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from model_bakery import baker
from openpyxl import Workbook
from PIL import Image, ImageDraw

from grader.models import Department, Exam, User
from ml.demo_data import DemoConfig, demo_build

A4_150 = (1240, 1754)


class HtmxClient(Client):
    """A test client whose requests carry the headers htmx sends."""

    def generic(self, *args, headers=None, **kwargs):
        return super().generic(*args, headers={"HX-Request": "true", **(headers or {})}, **kwargs)


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def department(db) -> Department:
    return baker.make(Department, name="Science")


@pytest.fixture
def teacher(department) -> User:
    return baker.make(User, username="teacher", role=User.Role.TEACHER, department=department, is_active=True)


@pytest.fixture
def other_teacher(department) -> User:
    return baker.make(User, username="other", role=User.Role.TEACHER, department=department, is_active=True)


@pytest.fixture
def head(department) -> User:
    return baker.make(User, username="head", role=User.Role.HEAD, department=department, is_active=True)


@pytest.fixture
def exam(teacher, department) -> Exam:
    return baker.make(Exam, title="Year 9 Science", owner=teacher, department=department, pages_per_script=2)


@pytest.fixture
def client_for() -> Callable[[User], Client]:
    def make(user: User, *, htmx: bool = False) -> Client:
        client = HtmxClient() if htmx else Client()
        client.force_login(user)
        return client

    return make


def xlsx_upload(rows: Sequence[Sequence[object]], *, name: str = "sheet.xlsx") -> SimpleUploadedFile:
    """An .xlsx upload whose first sheet holds ``rows`` (the first row is usually the header)."""
    workbook = Workbook()
    for row in rows:
        workbook.active.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="application/vnd.ms-excel")


def xlsx_declaring(rows: Sequence[Sequence[object]], *, dimension: str, name: str = "sheet.xlsx") -> SimpleUploadedFile:
    """``xlsx_upload(rows)`` whose sheet declares it spans only ``dimension`` (e.g. ``A1:D3``), as a file
    whose ``<dimension>`` tag is wrong or crafted does."""
    source = zipfile.ZipFile(io.BytesIO(xlsx_upload(rows).read()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.startswith("xl/worksheets/"):
                data, count = re.subn(rb'<dimension ref="[^"]*"', f'<dimension ref="{dimension}"'.encode(), data)
                assert count == 1
            target.writestr(item, data)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="application/vnd.ms-excel")


def layout_page(layout: int, *, size: tuple[int, int] = A4_150, ink: bool = True) -> Image.Image:
    """A synthetic printed page; pages with the same ``layout`` look alike, different layouts do not."""
    page = Image.new("RGB", size, "white")
    if not ink:
        return page
    draw = ImageDraw.Draw(page)
    width, height = size
    draw.rectangle([80, 60, width - 80, 160], outline="black", width=4)
    for row in range(12):
        top = 220 + row * 120 + (layout * 37) % 90
        if layout % 2:
            draw.rectangle([100, top, width // 2, top + 60], fill=(40, 40, 40))
        else:
            draw.rectangle([width // 2, top, width - 100, top + 30], fill=(40, 40, 40))
        draw.line([100, top + 90, width - 100, top + 90], fill="black", width=3)
    return page


def pdf_bytes(pages: Sequence[Image.Image], *, dpi: int = 150) -> bytes:
    buffer = io.BytesIO()
    pages[0].save(buffer, format="PDF", save_all=True, append_images=list(pages[1:]), resolution=dpi)
    return buffer.getvalue()


def pdf_upload(pages: Sequence[Image.Image], *, name: str = "scans.pdf") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, pdf_bytes(pages), content_type="application/pdf")


@pytest.fixture(scope="session")
def demo_folder_for(tmp_path_factory) -> Callable[..., Path]:
    """Generated demo exam folders (ml.demo_data), built once per configuration for the whole run."""
    built: dict[DemoConfig, Path] = {}

    def build(**config) -> Path:
        key = DemoConfig(**config)
        if key not in built:
            built[key] = tmp_path_factory.mktemp("demo")
            demo_build(out_dir=built[key], config=key)
        return built[key]

    return build


class RememberingEngine:
    """The real EasyOCR engine, remembering its readings for the whole run, so tests that read the same
    demo pages do not run the model again. ``calls`` counts the reads asked of this wrapper."""

    memory: dict = {}

    def __init__(self, real):
        self.real = real
        self.name = real.name
        self.calls = 0

    def read_page(self, *, page, regions, lang="en"):
        self.calls += 1
        key = (hashlib.sha1(page.tobytes()).hexdigest(), page.size, tuple(regions), lang)
        if key not in self.memory:
            self.memory[key] = self.real.read_page(page=page, regions=regions, lang=lang)
        return self.memory[key]


@pytest.fixture
def remembered_ocr(monkeypatch) -> RememberingEngine:
    """EasyOCR, as ``engine_get`` hands it out, wrapped in a ``RememberingEngine`` for this test."""
    from grader.reading import services as reading

    engine = RememberingEngine(reading.engine_get(reading.OCR))
    monkeypatch.setitem(reading._engines, reading.OCR, engine)
    return engine


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def page(live_server, monkeypatch):
    """A Playwright page in Debian's chromium (1280x900), for tests against ``live_server``."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make install` installs Debian's chromium.")
    # Playwright's sync API runs an event loop in this thread; the ORM calls tests make are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15_000)
        yield page
        browser.close()


@pytest.fixture
def template_pdf() -> SimpleUploadedFile:
    """A two-page blank exam: page 1 has layout 1, page 2 layout 2."""
    return pdf_upload([layout_page(1), layout_page(2)], name="blank.pdf")


def pdf_first_page_text(data: bytes) -> str:
    """The text on the first page of the PDF ``data``."""
    document = pdfium.PdfDocument(data)
    try:
        return document[0].get_textpage().get_text_range()
    finally:
        document.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: email.message.EmailMessage

    @property
    def attachment(self) -> tuple[str, bytes]:
        """The first attachment's file name and content."""
        part = next(self.message.iter_attachments())
        return part.get_filename(), part.get_content()


class Mailbox:
    """aiosmtpd handler: keeps every accepted message; refuses the addresses in ``refuse`` at RCPT
    (address -> the server's reply, e.g. "550 5.1.1 Recipient address rejected").
    ``host`` and ``port`` are where the server listens."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.received: list[Received] = []
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.recipients]


@pytest.fixture
def smtp_server() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd, no TLS, no login) on 127.0.0.1 and a free port, in this process."""
    mailbox = Mailbox("127.0.0.1", free_port())
    controller = Controller(mailbox, hostname=mailbox.host, port=mailbox.port)
    controller.start()
    yield mailbox
    controller.stop()


@pytest.fixture
def smtp(settings, smtp_server) -> Mailbox:
    """``smtp_server``, with Django's SMTP backend (this process, live_server included) sending to it."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = smtp_server.host, smtp_server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.DEFAULT_FROM_EMAIL = "markdesk <markdesk@school.example>"
    return smtp_server

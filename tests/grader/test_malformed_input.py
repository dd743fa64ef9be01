"""Every malformed input is refused with a clear message and leaves the database as it was; none is a
server error. One row per input that answered 500 (issue 12), then a seeded fuzz run over the box,
score, identity, import, API and restore endpoints.

Each view refuses as it refuses any other bad input: JSON endpoints, htmx rows, downloads and the
restore page with a 4xx; the identity row inline (200); form posts that redirect back to their page
(box and spreadsheet imports, exports, rollback) with the message shown there.
"""

from __future__ import annotations

import html
import io
import json
import random
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pikepdf
import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.messages import get_messages
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse
from model_bakery import baker
from PIL import Image, ImageDraw

from annotations.models import AnswerBox
from grader.api.services import api_token_create
from grader.models import Exam, Question, ScanPage, ScanUpload, Script, Student, TemplatePage
from grader.outputs.backup import exam_backup_write
from grader.outputs.models import ExportJob
from grader.reading.models import Answer
from tests.conftest import HtmxClient, layout_page, pdf_bytes, xlsx_upload

pytestmark = pytest.mark.django_db

API_URL = "/api/v1/read"
DEEP = "[" * 100_000 + "]" * 100_000


def _picture(format: str) -> bytes:
    image = Image.new("L", (124, 175), "white")
    ImageDraw.Draw(image).rectangle([10, 10, 100, 40], fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def _client(user, *, htmx: bool = False) -> Client:
    client = (HtmxClient if htmx else Client)(raise_request_exception=False)
    client.force_login(user)
    return client


@dataclass
class World:
    """An exam with two template pages, Q1 (2 marks in halves) and its box, one student's script with
    a scanned page and an answer, an API token, a backup of it all, and clients for its teacher
    (plain and htmx) and its department head."""

    exam: Exam
    question: Question
    answer: Answer
    box: AnswerBox
    token: str
    backup: bytes
    teacher: Client
    htmx: Client
    head: Client

    def url(self, name: str, *args) -> str:
        return reverse(name, args=[self.exam.pk, *args])


@pytest.fixture
def world(exam, teacher, head) -> World:
    for index in range(2):
        page = TemplatePage(exam=exam, index=index, width=1240, height=1754)
        page.image.save(f"page-{index + 1}.png", ContentFile(_picture("PNG")), save=True)
    question = baker.make(Question, exam=exam, label="Q1", order=1, answer="42", max_score=Decimal("2"),
                          granularity=Decimal("0.5"), strategy="exact")
    box = AnswerBox.objects.create(exam=exam, page=0, label="Q1", question=question, x1=100, y1=700, x2=1000, y2=820)
    student = baker.make(Student, exam=exam, student_id="S1", name="Ada Lovelace")
    script = baker.make(Script, exam=exam, number=1, student=student)
    upload = baker.make(ScanUpload, exam=exam, original_name="scans.pdf", sha256="0" * 64, kind="pdf",
                        status=ScanUpload.Status.DONE)
    scan = ScanPage(exam=exam, upload=upload, source_index=0, script=script, position=0, template_index=0,
                    width=1240, height=1754)
    scan.image.save("s1p0.jpg", ContentFile(_picture("JPEG")), save=True)
    answer = baker.make(Answer, script=script, question=question, page=scan, text="41",
                        readings={"easyocr": {"text": "41", "confidence": 0.9}})
    backup = io.BytesIO()
    exam_backup_write(exam=exam, out=backup)
    return World(exam=exam, question=question, answer=answer, box=box, token=api_token_create(user=teacher, name="t")[1],
                 backup=backup.getvalue(), teacher=_client(teacher), htmx=_client(teacher, htmx=True), head=_client(head))


def snapshot() -> dict[str, list]:
    """Every row of markdesk's own models and every stored file: what a refusal must leave as it was."""
    rows = {}
    for model in apps.get_models():
        if model.__module__.startswith(("grader.", "annotations.")):
            rows[model._meta.label] = list(model.objects.order_by("pk").values())
    for token in rows.get("api.ApiToken", []):
        token.pop("last_used")  # stamped by every request that shows the token
    media = Path(settings.MEDIA_ROOT)
    rows["files"] = sorted(str(path.relative_to(media)) for path in media.rglob("*") if path.is_file())
    return rows


def said(response: HttpResponse) -> str:
    """What the response tells the person: its text (JSON decoded, HTML unescaped) and its flashed messages."""
    if response.get("Content-Type", "").startswith("application/json"):
        text = json.dumps(response.json(), ensure_ascii=False)
    else:
        text = html.unescape(response.content.decode(errors="replace"))
    return " ".join([text, *(str(message) for message in get_messages(response.wsgi_request))])


# ---------------------------------------------------------------- ways to send a malformed input


def box_save(body: str | bytes) -> Callable[[World], HttpResponse]:
    return lambda w: w.teacher.post(w.url("box_save"), data=body, content_type="application/json")


def box_import(fmt: str, content: str | bytes, *, page: str = "1") -> Callable[[World], HttpResponse]:
    return lambda w: w.teacher.post(
        w.url("boxes_import"), {"format": fmt, "page": page, "file": SimpleUploadedFile("boxes.json", _bytes(content))}
    )


def api_read(regions: str) -> Callable[[World], HttpResponse]:
    def send(w: World) -> HttpResponse:
        page = SimpleUploadedFile("page.png", _picture("PNG"), content_type="image/png")
        return Client(raise_request_exception=False).post(
            API_URL, {"file": page, "regions": regions}, headers={"Authorization": f"Bearer {w.token}"}
        )

    return send


def restore(spoil: Callable[[bytes], bytes]) -> Callable[[World], HttpResponse]:
    return lambda w: w.teacher.post(reverse("exam_restore"), {"file": SimpleUploadedFile("year9.zip", spoil(w.backup))})


def score(value: str, *, version: str = "0") -> Callable[[World], HttpResponse]:
    return lambda w: w.htmx.post(w.url("grading_score", w.answer.pk), {"score": value, "version": version})


def identity(student: str) -> Callable[[World], HttpResponse]:
    return lambda w: w.htmx.post(w.url("identity_choose", 1), {"student": student})


def group_score(versions: str) -> Callable[[World], HttpResponse]:
    return lambda w: w.htmx.post(w.url("grading_group_score", w.question.pk),
                                 {"score": "1", "group": "41", "versions": versions})


def _bytes(content: str | bytes) -> bytes:
    return content.encode() if isinstance(content, str) else content


# ---------------------------------------------------------------- spoiled backups


def _rewritten(data: bytes, name: str, change: Callable[[bytes], bytes]) -> bytes:
    """The zip ``data`` with member ``name`` changed (deflated, as a backup stores its JSON)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info)
            target.writestr(info, change(content) if info.filename == name else content)
    return out.getvalue()


def _records(change: Callable[[dict], None]) -> Callable[[bytes], bytes]:
    """A spoiler of backups: ``change`` edits the decoded records.json (a dict of model label -> records)."""
    def edit(content: bytes) -> bytes:
        document = json.loads(content)
        change({section["model"]: section["records"] for section in document["models"]})
        return json.dumps(document).encode()

    return lambda data: _rewritten(data, "records.json", edit)


def _first(model: str, field: str, value) -> Callable[[dict], None]:
    def change(records: dict) -> None:
        records[model][0]["fields"][field] = value

    return change


def _central_entry(data: bytes, name: str) -> int:
    """Where the central directory entry of member ``name`` starts in the zip ``data``."""
    at = data.find(b"PK\x01\x02")
    while data[at + 46:at + 46 + struct.unpack("<H", data[at + 28:at + 30])[0]] != name.encode():
        at = data.find(b"PK\x01\x02", at + 4)
    return at


def _with_crc(data: bytes) -> bytes:
    """records.json's checksum in the central directory (the one zipfile checks) no longer fits its content."""
    data = bytearray(_rewritten(data, "records.json", lambda content: content))
    at = _central_entry(bytes(data), "records.json") + 16
    data[at:at + 4] = struct.pack("<I", struct.unpack("<I", data[at:at + 4])[0] ^ 0xFFFF)
    return bytes(data)


def _with_lying_size(data: bytes) -> bytes:
    """records.json claims to unpack to 10 bytes fewer than it does."""
    data = bytearray(_rewritten(data, "records.json", lambda content: content))
    at = _central_entry(bytes(data), "records.json") + 24
    data[at:at + 4] = struct.pack("<I", struct.unpack("<I", data[at:at + 4])[0] - 10)
    return bytes(data)


def _with_corrupt_deflate(data: bytes) -> bytes:
    """Bytes in the middle of records.json's deflate stream flipped."""
    data = bytearray(_rewritten(data, "records.json", lambda content: content))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("records.json")
    local = info.header_offset
    start = local + 30 + sum(struct.unpack("<HH", data[local + 26:local + 30]))
    for at in range(start + 2, start + 12):
        data[at] ^= 0xA5
    return bytes(data)


def _page_image_replaced(content: bytes) -> Callable[[bytes], bytes]:
    def spoil(data: bytes) -> bytes:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            name = next(name for name in archive.namelist() if name.endswith("/pages/s1p0.jpg"))
        return _rewritten(data, name, lambda _: content)

    return spoil


# ---------------------------------------------------------------- xlsx


def _xlsx_with_entities() -> bytes:
    """A roster whose sheet declares an entity and uses it in a cell."""
    source = zipfile.ZipFile(io.BytesIO(xlsx_upload([["ID", "NAME", "CLASS", "EMAIL"], ["S2", "Ben", "9A", ""]]).read()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            content = source.read(info)
            if info.filename.startswith("xl/worksheets/"):
                content = content.replace(b"?>", b'?><!DOCTYPE x [<!ENTITY name SYSTEM "file:///etc/passwd">]>', 1)
                content = content.replace(b"<t>Ben</t>", b"<t>&name;</t>")
            target.writestr(info, content)
    return out.getvalue()


def roster_import(content: bytes) -> Callable[[World], HttpResponse]:
    return lambda w: w.teacher.post(w.url("roster_import"), {"file": SimpleUploadedFile("class.xlsx", content)}, follow=True)


# ---------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    send: Callable[[World], HttpResponse]
    status: int  # of the first response, before any redirect is followed
    says: str
    prepare: Callable[[World], object] = lambda world: None


JSON_BOX = '{"page": 0, "bbox": %s, "label": "Q2"}'
CASES: dict[str, Case] = {
    # box JSON
    "NaN in a box's bbox": Case(box_save(JSON_BOX % "[NaN, 10, 200, 100]"), 400,
                                "The request is not valid JSON: NaN is not a number."),
    "Infinity in a box's bbox": Case(box_save(JSON_BOX % "[10, 10, Infinity, 100]"), 400, "Infinity is not a number"),
    "1e308 in a box's bbox": Case(box_save(JSON_BOX % "[10, 10, 1e308, 100]"), 400,
                                  "The request is out of range: 1e308 is beyond the ±1e+15 markdesk reads."),
    "1e308 in an imported annotations.json": Case(
        box_import("annotations", '{"0": [{"x": 1e308, "y": 0, "width": 1e308, "height": 10, "label": "Q2"}]}'), 302,
        "boxes.json: out of range: 1e308 is beyond"),
    "1e308 in an imported HG-Bench file": Case(
        box_import("hgbench", '[{"page": 1, "box_2d": [0, 0, 1e308, 10]}]'), 302, "boxes.json: out of range: 1e308"),
    "a box id as text": Case(box_save('{"id": "Q1", "bbox": [10, 10, 200, 100]}'), 400, "id must be a box number."),
    "a box id as a list": Case(box_save('{"id": [1], "bbox": [10, 10, 200, 100]}'), 400, "id must be a box number."),
    "a parent as text": Case(box_save('{"parent": "Q1", "bbox": [10, 10, 200, 100]}'), 400,
                             "parent must be a box number."),
    "a parent as a list": Case(box_save('{"parent": [1], "bbox": [10, 10, 200, 100]}'), 400,
                               "parent must be a box number."),
    "a box saved nested 100k deep": Case(box_save(DEEP), 400,
                                         "The request is nested deeper than the 32 levels markdesk reads."),
    "a box file nested 100k deep": Case(box_import("annotations", DEEP), 302,
                                        "boxes.json: nested deeper than the 32 levels markdesk reads"),
    "API regions nested 100k deep": Case(api_read(DEEP), 400, "'regions' is nested deeper than the 32 levels"),
    "API regions with a 5000-digit index": Case(api_read('[{"index": 1%s, "bbox": [0, 0, 9, 9]}]' % ("0" * 5000)), 400,
                                                "'regions' is out of range: 10000000000000000000…"),
    "a backup's records.json nested 100k deep": Case(
        restore(lambda data: _rewritten(data, "records.json", lambda _: ('{"models": %s}' % DEEP).encode())), 400,
        "year9.zip was not restored: records.json in the backup nests deeper than the 32 levels"),
    # whole numbers in query strings and forms
    "a region list export of page ²": Case(lambda w: w.teacher.get(w.url("boxes_export", "regions") + "?page=²"), 400,
                                           "page must be a page number from 1."),
    "a region list export of a 5000-digit page": Case(
        lambda w: w.teacher.get(w.url("boxes_export", "regions") + "?page=" + "9" * 5000), 400, "page must be a page"),
    "an email preview for student ²": Case(lambda w: w.teacher.get(w.url("email_preview") + "?student=²"), 400,
                                          "student must be a student's number, not '²'."),
    "an email preview for a 5000-digit student": Case(
        lambda w: w.teacher.get(w.url("email_preview") + "?student=" + "9" * 5000), 400, "student must be a student's"),
    "identity student ²": Case(identity("²"), 200, "Choose a student on this exam's roster"),
    "identity student of 5000 digits": Case(identity("9" * 5000), 200, "Choose a student on this exam's roster"),
    "an export of script ²": Case(
        lambda w: w.teacher.post(w.url("export_create"), {"kind": ExportJob.Kind.SCRIPT_PDF, "script": "²"}, follow=True),
        302, "Choose a script of this exam."),
    "group versions ²:1": Case(group_score("²:1"), 422, "The page sent answer versions markdesk cannot read (“²:1”)"),
    "group versions of 5000 digits": Case(group_score("9" * 5000 + ":1"), 422, "answer versions markdesk cannot read"),
    # dates and numbers
    "a rollback to 30 February": Case(
        lambda w: w.teacher.post(w.url("grading_rollback"), {"to": "2024-02-30T10:00:00"}, follow=True), 302,
        "“2024-02-30T10:00:00” is not a date and time. Give the date and time to roll back to."),
    "a score of 1e999999999": Case(score("1e999999999"), 422, "“1e999999999” is more marks than a question can have."),
    "a score of 1e-999999999": Case(score("1e-999999999"), 422, "“1e-999999999” has more than 2 decimal places."),
    "a pass mark of 1e999999 from a department head": Case(
        lambda w: w.head.post(w.url("export_create"), {"kind": ExportJob.Kind.SAMPLE_REPORT, "pass_mark": "1e999999"},
                              follow=True),
        302, "The pass mark must be at most the exam's total of 2 marks."),
    "a backup with pages_per_script 10**20": Case(
        restore(_records(_first("grader.exam", "pages_per_script", 10**20))), 400,
        "a grader.exam record cannot be restored (Ensure this value is less than or equal to 60.)"),
    "a backup with a score of 1e999999999": Case(
        restore(_records(_first("reading.answer", "score", "1e999999999"))), 400,
        "a reading.answer record cannot be restored (Ensure that there are no more than 6 digits in total.)"),
    # damaged backups (refused since commit 948869d)
    "a backup with a bad CRC": Case(restore(_with_crc), 400, "was not restored: The backup is damaged: Bad CRC-32"),
    "a backup with a corrupt deflate stream": Case(restore(_with_corrupt_deflate), 400,
                                                   "was not restored: The backup is damaged"),
    "a backup whose records.json lies about its size": Case(restore(_with_lying_size), 400,
                                                            "was not restored: The backup is damaged"),
    "a backup whose page image is a PDF": Case(
        restore(_page_image_replaced(pdf_bytes([layout_page(1)]))), 400,
        "should be a page image (one JPEG or PNG picture), not a PDF"),
    # files
    "an xlsx declaring entities": Case(roster_import(_xlsx_with_entities()), 302,
                                       "The sheet cannot be read: its XML is damaged or declares entities"),
    "an HG-Bench export of an exam without template pages": Case(
        lambda w: w.teacher.get(w.url("boxes_export", "hgbench")), 409,
        "HG-Bench boxes are measured against their page, and the blank exam has no page for Q1.",
        prepare=lambda w: w.exam.template_pages.all().delete()),
    # accepted or ignored before
    "a score of -0": Case(score("-0"), 422, "The score cannot be negative."),
    "a transcription of 2.4 MB": Case(
        lambda w: w.htmx.post(w.url("grading_text", w.answer.pk), {"text": "x" * 2_400_000, "version": "0"}), 422,
        "The text is 2,400,000 characters long; a transcription is at most 2,000."),
    "a default granularity of 0": Case(
        lambda w: w.teacher.post(w.url("exam_edit"), {"title": "Year 9 Science", "pages_per_script": "2",
                                                      "default_granularity": "0"}), 200,
        "The granularity must be more than 0"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_malformed_input_is_refused_with_a_clear_message_and_changes_nothing(world, case):
    CASES[case].prepare(world)
    before = snapshot()

    response = CASES[case].send(world)

    first_status = response.redirect_chain[0][1] if getattr(response, "redirect_chain", None) else response.status_code
    assert first_status == CASES[case].status, said(response)[:500]
    assert CASES[case].says in said(response)
    assert snapshot() == before


def _password_protected_pdf() -> bytes:
    document = pikepdf.new()
    document.add_blank_page()
    buffer = io.BytesIO()
    document.save(buffer, encryption=pikepdf.Encryption(owner="owner", user="user"))
    return buffer.getvalue()


def _empty_pdf() -> bytes:
    buffer = io.BytesIO()
    pikepdf.new().save(buffer)
    return buffer.getvalue()


def test_an_empty_pdf_is_called_empty_even_after_a_password_protected_one(world):
    upload = world.url("template_upload")
    world.teacher.post(upload, {"file": SimpleUploadedFile("locked.pdf", _password_protected_pdf())})
    before = snapshot()

    response = world.teacher.post(upload, {"file": SimpleUploadedFile("blank.pdf", _empty_pdf())}, follow=True)

    assert "blank.pdf has no pages." in said(response)
    assert snapshot() == before


# ---------------------------------------------------------------- fuzzing

# Values that none of the fields spoiled below takes; JSON text, so that NaN and 1e308 survive.
BAD_JSON_VALUES = [
    "NaN", "Infinity", "-Infinity", "1e308", "-1e308", "1" + "0" * 5000, "1e999999", '"²"', '"abc"', "[]", "{}",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", '{"a": {"b": [1, 2, {"c": null}]}}', "true",
    "-1000000", "1.5e300",
]
BAD_TEXTS = [
    "²", "٣", "１", "-1", "-0", "1e999999999", "1e-999999999", "NaN", "inf", "-inf", "0x10", "1_0", "1,2,3", "1.2.3",
    "9" * 5000, "9" * 30, "\x00", "🙂", "' OR 1=1 --", "<script>", " ", "NONE", "1/2",
]


def _json_bad(rng: random.Random, valid: dict, *, spoilable: tuple[str, ...]) -> str:
    """``valid`` (a JSON object) with one to three of its ``spoilable`` values made malformed, or its text spoiled."""
    text = json.dumps(valid)
    style = rng.randrange(5)
    if style == 0:  # cut short (never to nothing: an empty box file is a valid one)
        return text[: rng.randrange(1, len(text))]
    if style == 1:  # nested past any limit
        depth = rng.choice([40, 5_000, 100_000])
        return "[" * depth + text + "]" * depth
    if style == 2:  # not UTF-8, or not JSON at all
        return rng.choice(["\udcff", "nul", "{'single': 'quotes'}", "{,}", "[1,]", "\x00" * 10])
    keys = rng.sample(spoilable, k=rng.randint(1, min(3, len(spoilable))))
    text = json.dumps({**valid, **{key: f"@{key}@" for key in keys}})
    for key in keys:
        text = text.replace(f'"@{key}@"', rng.choice(BAD_JSON_VALUES))
    return text


def _fuzz_box_save(rng: random.Random, w: World) -> HttpResponse:
    valid = {"page": 0, "bbox": [100, 300, 500, 400], "label": "Q2", "id": None, "parent": None}
    body = _json_bad(rng, valid, spoilable=("page", "bbox", "id", "parent"))
    return w.teacher.post(w.url("box_save"), data=body.encode("utf-8", "surrogateescape"), content_type="application/json")


def _fuzz_box_import(rng: random.Random, w: World) -> HttpResponse:
    fmt, valid, spoilable = rng.choice([
        ("annotations", {"x": 100, "y": 300, "width": 400, "height": 100, "label": "Q2"}, ("x", "y", "width", "height")),
        ("hgbench", {"page": 1, "box_2d": [80, 170, 400, 230], "label": "Q2"}, ("page", "box_2d")),
        ("regions", {"index": 2, "bbox": [100, 300, 500, 400]}, ("index", "bbox")),
    ])
    body = _json_bad(rng, valid, spoilable=spoilable)
    wrapped = f'{{"0": [{body}]}}' if fmt == "annotations" else f"[{body}]"
    page = rng.choice(BAD_TEXTS) if rng.random() < 0.2 else "1"
    return w.teacher.post(w.url("boxes_import"), {
        "format": fmt, "page": page,
        "file": SimpleUploadedFile("boxes.json", wrapped.encode("utf-8", "surrogateescape")),
    })


def _fuzz_score(rng: random.Random, w: World) -> HttpResponse:
    # A fullwidth "１" is a score of 1, as an East Asian keyboard types it.
    value = rng.choice([*(text for text in BAD_TEXTS if text != "１"), "3", "2.5", "0.3", "1.25", "10000", "1e4", "-0.5"])
    version = "0" if rng.random() < 0.8 else rng.choice(BAD_TEXTS)
    if version != "0":
        value = "1"  # a good score with a malformed version: refused as stale
    return w.htmx.post(w.url("grading_score", w.answer.pk), {"score": value, "version": version})


def _fuzz_identity(rng: random.Random, w: World) -> HttpResponse:
    return w.htmx.post(w.url("identity_choose", 1), {"student": rng.choice([*BAD_TEXTS, "", "123456789"])})


def _fuzz_api(rng: random.Random, w: World) -> HttpResponse:
    body = _json_bad(rng, {"index": 1, "bbox": [0, 0, 60, 60], "kind": "text"}, spoilable=("bbox", "kind"))
    regions = rng.choice([f"[{body}]", body, "[" + ",".join([body] * rng.randint(1, 3)) + "]"])
    return api_read(regions.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))(w)


RECORD_SPOILS = [
    ("grader.exam", "pages_per_script", 10**20), ("grader.exam", "pages_per_script", 0),
    ("grader.exam", "default_granularity", "1e999999"), ("grader.question", "max_score", "-5"),
    ("grader.question", "max_score", "NaN"), ("grader.script", "number", -1), ("grader.script", "number", 2**64),
    ("reading.answer", "score", "1e999999999"), ("reading.answer", "score", "x"), ("reading.answer", "question", 99),
    ("reading.answer", "script", [1]), ("grader.scanpage", "image", "files/nowhere.jpg"),
    ("grader.scanpage", "script", "one"), ("annotations.answerbox", "x1", 10**30),
]


def _fuzz_restore(rng: random.Random, w: World) -> HttpResponse:
    style = rng.randrange(4)
    if style == 0:
        model, field, value = rng.choice(RECORD_SPOILS)
        spoil = _records(_first(model, field, value))
    elif style == 1:  # cut short
        spoil = lambda data: data[: rng.randrange(len(data) // 2, len(data))]  # noqa: E731
    elif style == 2:
        spoil = rng.choice([_with_crc, _with_corrupt_deflate, _with_lying_size])
    else:  # records.json replaced by malformed JSON
        text = _json_bad(rng, {"models": []}, spoilable=("models",))
        spoil = lambda data: _rewritten(data, "records.json", lambda _: text.encode("utf-8", "surrogateescape"))  # noqa: E731
    return restore(spoil)(w)


FUZZED = {_fuzz_box_save: 60, _fuzz_box_import: 40, _fuzz_score: 40, _fuzz_identity: 25, _fuzz_api: 30,
          _fuzz_restore: 30}


def test_two_hundred_malformed_bodies_are_refused_without_a_server_error_or_a_change(world):
    rng = random.Random(12)
    before = snapshot()

    for send, count in FUZZED.items():
        for attempt in range(count):
            response = send(rng, world)
            where = f"{send.__name__} #{attempt}"
            assert response.status_code < 500, f"{where}: {said(response)[:300]}"
            assert snapshot() == before, f"{where} changed the database: {said(response)[:300]}"

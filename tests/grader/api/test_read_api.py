"""POST /api/v1/read: tokens, refusals with their messages, and a real reading of a demo page."""

from __future__ import annotations

import hashlib
import io
import json
import logging

import pikepdf
import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from model_bakery import baker
from PIL import Image
from rapidfuzz.distance import Levenshtein

from grader.api import services as api
from grader.api.models import ApiToken
from grader.models import User
from grader.reading import services as reading
from ml.pages import document_pages
from ml.recognition.base import Reading
from tests.conftest import layout_page, pdf_bytes

URL = "/api/v1/read"
PAGE_SIZE = (400, 300)
REGIONS = json.dumps([{"index": 1, "bbox": [10, 10, 200, 100]}])


@pytest.fixture
def token(teacher) -> str:
    return api.api_token_create(user=teacher, name="gradebook")[1]


@pytest.fixture
def post(token):
    """POST to the API with the token, through a client that enforces CSRF (the API must not need it)."""
    client = Client(enforce_csrf_checks=True)

    def send(data: dict, *, auth: str | None = f"Bearer {token}", **extra):
        headers = {"Authorization": auth} if auth is not None else {}
        return client.post(URL, data, headers=headers, **extra)

    return send


def png_upload(image: Image.Image, *, name: str = "page.png", dpi: int | None = 150) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **({"dpi": (dpi, dpi)} if dpi else {}))
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


def small_page() -> SimpleUploadedFile:
    return png_upload(Image.new("RGB", PAGE_SIZE, "white"))


# ---------------------------------------------------------------- tokens


def test_the_command_prints_a_new_token_once_and_stores_only_its_hash(teacher):
    out, err = io.StringIO(), io.StringIO()

    call_command("api_token", "teacher", "--name", "School gradebook", stdout=out, stderr=err)

    plain = out.getvalue().strip()
    record = ApiToken.objects.get()
    assert plain.startswith("mdk_") and len(plain) > 40
    assert record.user == teacher and record.name == "School gradebook"
    assert record.key_hash == hashlib.sha256(plain.encode()).hexdigest()
    assert record.prefix == plain[:12] and plain[12:] not in record.prefix
    assert not record.revoked and record.last_used is None
    assert "shown once" in err.getvalue() and record.prefix in err.getvalue()


def test_the_command_revokes_a_token_by_its_prefix_and_the_token_stops_working(teacher, token, post):
    record = ApiToken.objects.get()
    out = io.StringIO()

    call_command("api_token", "--revoke", record.prefix, stdout=out)

    record.refresh_from_db()
    assert record.revoked and record.revoked_at is not None
    assert f"Revoked {record.prefix}" in out.getvalue()
    response = post({"file": small_page(), "regions": REGIONS})
    assert response.status_code == 401
    assert response.json() == {"error": "The token has been revoked."}


def test_the_command_lists_tokens_without_showing_them(teacher, token):
    out = io.StringIO()

    call_command("api_token", "teacher", "--list", stdout=out)

    assert "gradebook" in out.getvalue() and "active" in out.getvalue()
    assert token not in out.getvalue()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["nobody", "--name", "x"], "There is no user 'nobody'."),
        (["--name", "x"], "Give the USERNAME"),
        (["teacher", "--name", "  "], "Give the token a name"),
        (["--revoke", "mdk_zzzzzzzz"], "There is no token starting with mdk_zzzzzzzz."),
        (["--revoke", "mdk"], "Give at least the first 8 characters"),
    ],
)
def test_the_command_explains_what_it_cannot_do(teacher, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("api_token", *arguments)


def test_tokens_are_listed_created_and_revoked_in_the_admin(teacher, department):
    admin = baker.make(User, username="root", is_staff=True, is_superuser=True, is_active=True)
    api.api_token_create(user=teacher, name="gradebook")
    client = Client()
    client.force_login(admin)

    listing = client.get("/admin/api/apitoken/")
    assert listing.status_code == 200 and b"gradebook" in listing.content

    added = client.post("/admin/api/apitoken/add/", {"user": teacher.pk, "name": "timetable"}, follow=True)
    assert added.status_code == 200
    shown = [str(message) for message in get_messages(added.wsgi_request)]
    plain = next(word for message in shown for word in message.split() if word.startswith("mdk_"))
    created = ApiToken.objects.get(name="timetable")
    assert created.key_hash == hashlib.sha256(plain.encode()).hexdigest()

    client.post("/admin/api/apitoken/", {"action": "revoke", "_selected_action": [created.pk]}, follow=True)
    created.refresh_from_db()
    assert created.revoked


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (None, "Send the token in an 'Authorization: Bearer <token>' header."),
        ("Token abc", "Send the token in an 'Authorization: Bearer <token>' header."),
        ("Bearer", "Send the token in an 'Authorization: Bearer <token>' header."),
        ("Bearer mdk_not-a-real-token", "The token is not valid."),
    ],
)
def test_requests_without_a_valid_token_get_401(post, auth, message):
    response = post({"file": small_page(), "regions": REGIONS}, auth=auth)

    assert response.status_code == 401
    assert response.json() == {"error": message}
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_disabled_users_token_gets_401(post, teacher):
    User.objects.filter(pk=teacher.pk).update(is_active=False)

    response = post({"file": small_page(), "regions": REGIONS})

    assert response.status_code == 401
    assert response.json() == {"error": "The token's user account is disabled."}


def test_get_is_not_allowed(token):
    response = Client().get(URL, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert "Use POST" in response.json()["error"]


def _regions(*entries) -> str:
    return json.dumps(list(entries))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"regions": REGIONS}, "The 'file' field is missing"),
        ({"file": "text"}, "page.txt is not a PDF or an image: it looks like a text file."),
        ({"file": "two-page-pdf"}, "page.pdf has 2 pages; send one page per request."),
        ({"file": "damaged-pdf"}, "page.pdf is damaged and cannot be read as a PDF."),
        ({"file": "page", "regions": None}, "The 'regions' field is missing"),
        ({"file": "page", "regions": '[{"index": 1, "bbox": [1, 2'}, "'regions' is not valid JSON"),
        ({"file": "page", "regions": '{"index": 1}'}, "'regions' must be a JSON list"),
        ({"file": "page", "regions": "[]"}, "'regions' is empty"),
        ({"file": "page", "regions": "[5]"}, "regions[0] must be an object with 'index' and 'bbox'."),
        ({"file": "page", "regions": _regions({"bbox": [1, 2, 3, 4]})}, "regions[0]: 'index' must be a whole number."),
        ({"file": "page", "regions": _regions({"index": "1", "bbox": [1, 2, 3, 4]})}, "'index' must be a whole number"),
        ({"file": "page", "regions": _regions({"index": 1, "bbox": [1, 2, 3]})}, "regions[0] (index 1): 'bbox' must be four numbers [x1, y1, x2, y2]."),
        ({"file": "page", "regions": _regions({"index": 1, "bbox": ["1", 2, 3, 4]})}, "'bbox' must be four numbers"),
        ({"file": "page", "regions": _regions({"index": 1})}, "'bbox' must be four numbers"),
        ({"file": "page", "regions": _regions({"index": 1, "bbox": [50, 10, 20, 40]})}, "'bbox' needs x1 < x2 and y1 < y2"),
        (
            {"file": "page", "regions": _regions({"index": 1, "bbox": [10, 10, 50, 50]}, {"index": 7, "bbox": [300, 10, 420, 50]})},
            "regions[1] (index 7): bbox [300, 10, 420, 50] lies outside the page, which is 400x300 pixels at 150 dpi.",
        ),
        ({"file": "page", "regions": _regions({"index": 1, "bbox": [-5, 10, 50, 50]})}, "lies outside the page"),
        (
            {"file": "page", "regions": _regions({"index": 1, "bbox": [1, 2, 30, 40]}, {"index": 1, "bbox": [5, 6, 70, 80]})},
            "regions[1]: index 1 is used twice.",
        ),
        ({"file": "page", "regions": _regions({"index": 1, "bbox": [1, 2, 30, 40], "kind": "chemistry"})}, "'kind' must be one of text, digits, number, name."),
        ({"file": "page", "regions": _regions({"index": 1, "bbox": [1, 2, 30, 40], "page": 2})}, "regions[0] has unknown field(s): page."),
        (
            {"file": "page", "regions": _regions(*({"index": n, "bbox": [0, 0, 10, 10]} for n in range(201)))},
            "Too many regions (201): at most 200 per request.",
        ),
        ({"file": "page", "engine": "tesseract"}, "Unknown engine 'tesseract': use one of easyocr."),
        ({"file": "page", "engine": "vlm"}, "The vlm engine is not configured on this server (VLM_MODEL_PATH is not set)."),
        ({"file": "page", "lang": "fr"}, "Unknown lang 'fr': use one of en, ch."),
    ],
)
def test_bad_requests_get_400_with_a_message_saying_why(post, settings, fields, message):
    settings.VLM_MODEL_PATH = ""  # the server has no VLM configured
    files = {
        "page": small_page(),
        "text": SimpleUploadedFile("page.txt", b"index,bbox\n1,2\n", content_type="text/plain"),
        "two-page-pdf": SimpleUploadedFile("page.pdf", pdf_bytes([layout_page(1), layout_page(2)]), content_type="application/pdf"),
        "damaged-pdf": SimpleUploadedFile("page.pdf", b"%PDF-1.4\n1 0 obj <<>>\nthis is not a pdf\n", content_type="application/pdf"),
    }
    data = {"regions": REGIONS, **fields}
    if "file" in data:
        data["file"] = files[data["file"]]
    data = {key: value for key, value in data.items() if value is not None}

    response = post(data)

    assert response.status_code == 400, response.content
    assert message in response.json()["error"]
    assert set(response.json()) == {"error"}


def test_an_image_over_the_pixel_limit_gets_400(post, settings):
    settings.MAX_IMAGE_PIXELS = 100_000

    response = post({"file": small_page(), "regions": REGIONS})  # 400x300 = 120,000 pixels

    assert response.status_code == 400
    assert "too large an image" in response.json()["error"]


@pytest.mark.parametrize("megabytes", [1.5, 3])  # under and over the form allowance checked before parsing
def test_a_file_over_the_size_limit_gets_413(post, settings, megabytes):
    settings.MAX_UPLOAD_MB = 1
    big = SimpleUploadedFile("page.png", b"\x89PNG" + b"\0" * int(megabytes * 1024 * 1024), content_type="image/png")

    response = post({"file": big, "regions": REGIONS})

    assert response.status_code == 413
    assert "over the 1 MB limit" in response.json()["error"]


# ---------------------------------------------------------------- reading


@pytest.fixture
def demo_folder(demo_folder_for):
    return demo_folder_for(students=3, absent=0, seed=5)


@pytest.fixture
def demo_page(demo_folder):
    """Page 0 of the demo scans (150 dpi) and the truth of the boxes on it, indexed from 1."""
    truth = json.loads((demo_folder / "truth.json").read_text())
    script = next(script for script in truth["scripts"] if script["scan_pages"][0] == 0)
    records = [record for record in script["fields"] + script["answers"] if record["template_page"] == 0]
    image = next(document_pages(path=demo_folder / "scans.pdf", kind="pdf", max_pixels=10**8, dpi=150))
    return image, records


def _demo_regions(records) -> str:
    kinds = {"NAME": "name"}
    return json.dumps(
        [{"index": n, "bbox": record["scan_box"], "kind": kinds.get(record["label"], "text")} for n, record in enumerate(records, 1)]
    )


@pytest.fixture
def ocr(remembered_ocr):
    return remembered_ocr


def test_easyocr_reads_a_demo_page_close_to_what_was_written(post, demo_page, ocr, teacher, caplog):
    image, records = demo_page
    caplog.set_level(logging.INFO, logger="grader.api.services")

    response = post({"file": png_upload(image, name="scan.png"), "regions": _demo_regions(records)})

    assert response.status_code == 200, response.content
    results = response.json()
    assert [result["index"] for result in results] == list(range(1, len(records) + 1))
    assert all(set(result) == {"index", "text", "confidence"} for result in results)
    distances = []
    for record, result in zip(records, results, strict=True):
        if record.get("blank"):
            assert result["text"] == "" and result["confidence"] == 1.0, record["label"]
            continue
        assert isinstance(result["text"], str) and result["text"], record["label"]
        assert 0 <= result["confidence"] <= 1
        distances.append(Levenshtein.normalized_distance(result["text"].lower(), record["text"].lower()))
    assert any(record.get("blank") for record in records)
    assert min(distances) <= 0.1  # at least one box read (nearly) exactly
    assert sum(distances) / len(distances) < 0.45
    assert ApiToken.objects.get().last_used is not None
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("API read by teacher")]
    assert logged and f"{len(records)} regions" in logged[0] and " ms" in logged[0]


def test_a_one_page_pdf_is_rendered_at_150_dpi_and_read_the_same(post, demo_page, demo_folder, ocr):
    image, records = demo_page
    regions = _demo_regions(records)
    source = pikepdf.open(demo_folder / "scans.pdf")
    single = pikepdf.new()
    single.pages.append(source.pages[0])
    buffer = io.BytesIO()
    single.save(buffer)

    from_pdf = post({"file": SimpleUploadedFile("scan.pdf", buffer.getvalue()), "regions": regions})
    from_png = post({"file": png_upload(image, name="scan.png"), "regions": regions})

    assert from_pdf.status_code == 200 and from_png.status_code == 200
    assert from_pdf.json() == from_png.json()


def test_with_lang_ch_easyocr_leaves_writing_unread_and_blanks_empty(post, demo_page, ocr):
    image, records = demo_page

    response = post({"file": png_upload(image), "regions": _demo_regions(records), "lang": "ch"})

    assert response.status_code == 200
    for record, result in zip(records, response.json(), strict=True):
        assert result["text"] == ("" if record.get("blank") else None)


def test_the_vlm_engine_is_used_when_configured_and_is_not_asked_about_blank_boxes(post, demo_page, settings, monkeypatch):
    image, records = demo_page
    settings.VLM_MODEL_PATH = "/models/qwen"
    asked = []

    class FakeVlm:
        name = "vlm"

        def read_page(self, *, page, regions, lang="en"):
            asked.extend(region.index for region in regions)
            return [Reading(index=region.index, text=f"read {region.index}", confidence=None, engine="vlm") for region in regions]

    monkeypatch.setitem(reading._engines, reading.VLM, FakeVlm())

    response = post({"file": png_upload(image), "regions": _demo_regions(records), "engine": "vlm"})

    assert response.status_code == 200
    blanks = {n for n, record in enumerate(records, 1) if record.get("blank")}
    assert blanks and not blanks & set(asked)
    for n, result in enumerate(response.json(), 1):
        assert result == ({"index": n, "text": "", "confidence": 1.0} if n in blanks else {"index": n, "text": f"read {n}", "confidence": None})


def test_an_engine_failure_is_a_500_with_a_json_error(post, monkeypatch):
    class Broken:
        name = "easyocr"

        def read_page(self, *, page, regions, lang="en"):
            raise RuntimeError("out of memory")

    monkeypatch.setitem(reading._engines, reading.OCR, Broken())

    response = post({"file": small_page(), "regions": REGIONS})

    assert response.status_code == 500
    assert response.json() == {"error": "The easyocr engine failed to read the page."}


def test_regions_may_come_as_a_json_file_part(post, monkeypatch):
    class Echo:
        name = "easyocr"

        def read_page(self, *, page, regions, lang="en"):
            return [Reading(index=region.index, text="", confidence=1.0, engine="easyocr") for region in regions]

    monkeypatch.setitem(reading._engines, reading.OCR, Echo())
    regions = SimpleUploadedFile("regions.json", REGIONS.encode(), content_type="application/json")

    response = post({"file": small_page(), "regions": regions})

    assert response.status_code == 200
    assert response.json() == [{"index": 1, "text": "", "confidence": 1.0}]

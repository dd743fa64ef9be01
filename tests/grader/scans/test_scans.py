"""Uploading scans: validation, splitting into scripts, blank backs, flags, and page moves."""

from __future__ import annotations

import io
from pathlib import Path

import pikepdf
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image, ImageDraw

from grader import services
from grader.scans import services as scans
from grader.models import ScanPage, ScanUpload, Script
from tests.conftest import layout_page, pdf_bytes, pdf_upload


def _scan(exam, teacher, pages, *, name="scans.pdf"):
    intake = scans.scan_files_accept(exam=exam, files=[pdf_upload(pages, name=name)], user=teacher)
    assert not intake.rejected, intake.rejected
    return scans.scan_upload_process(upload_id=intake.accepted[0].pk)


def _script_pages(exam):
    return {
        script.number: [page.source_index for page in script.pages.order_by("position")]
        for script in exam.scripts.all()
    }


@pytest.fixture
def exam_with_template(exam, template_pdf):
    services.template_upload(exam=exam, file=template_pdf)
    return exam


# ---------------------------------------------------------------- splitting


def test_scans_are_grouped_in_order_into_scripts_of_the_exams_page_count(exam_with_template, teacher):
    upload = _scan(exam_with_template, teacher, [layout_page(1), layout_page(2)] * 3)

    assert upload.status == ScanUpload.Status.DONE
    assert _script_pages(exam_with_template) == {1: [0, 1], 2: [2, 3], 3: [4, 5]}
    assert all(page.width == 1240 and page.height == 1754 for page in ScanPage.objects.all())
    assert upload.notes[0] == "6 pages read, 3 scripts made."


def test_a_second_upload_continues_the_script_numbers(exam_with_template, teacher):
    _scan(exam_with_template, teacher, [layout_page(1), layout_page(2)], name="a.pdf")
    _scan(exam_with_template, teacher, [layout_page(1), layout_page(2), layout_page(1), layout_page(2)], name="b.pdf")

    assert sorted(exam_with_template.scripts.values_list("number", flat=True)) == [1, 2, 3]


def test_blank_back_pages_are_set_aside_visibly_and_not_put_in_scripts(exam_with_template, teacher):
    blank = layout_page(0, ink=False)
    upload = _scan(exam_with_template, teacher, [layout_page(1), blank, layout_page(2), blank] * 2)

    assert _script_pages(exam_with_template) == {1: [0, 2], 2: [4, 6]}
    set_aside = ScanPage.objects.filter(discarded=True).order_by("source_index")
    assert [page.source_index for page in set_aside] == [1, 3, 5, 7]
    assert {page.discard_reason for page in set_aside} == {"Blank back page"}
    assert "Set aside 4 blank pages: pages 2, 4, 6, 8. Restore any that are not blank." in upload.notes


def test_blank_pages_stay_in_scripts_when_the_exam_keeps_them(exam_with_template, teacher):
    exam_with_template.drop_blank_pages = False
    exam_with_template.save()

    _scan(exam_with_template, teacher, [layout_page(1), layout_page(0, ink=False)])

    assert _script_pages(exam_with_template) == {1: [0, 1]}


def test_a_page_count_that_does_not_divide_leaves_the_extra_pages_flagged_in_the_tray(exam_with_template, teacher):
    upload = _scan(exam_with_template, teacher, [layout_page(1), layout_page(2)] * 2 + [layout_page(1)])

    assert _script_pages(exam_with_template) == {1: [0, 1], 2: [2, 3]}
    assert ScanPage.objects.exclude(flag="").count() == 1
    leftover = ScanPage.objects.get(source_index=4)
    assert leftover.script is None and not leftover.discarded
    assert leftover.flag.startswith("Left over")
    assert any("5 pages do not divide into scripts of 2: page 5 left unassigned" in note for note in upload.notes)


def test_a_page_from_another_exam_is_flagged_with_its_page_number(exam_with_template, teacher):
    foreign = Image.new("RGB", (1240, 1754), "white")
    draw = ImageDraw.Draw(foreign)
    for line in range(30):
        draw.text((100, 60 + line * 50), f"History paper, question {line}: describe the causes", fill="black")

    upload = _scan(exam_with_template, teacher, [layout_page(1), foreign])

    flagged = ScanPage.objects.exclude(flag="")
    assert [page.source_index for page in flagged] == [1]
    assert "Does not look like a page of this exam" in flagged[0].flag
    assert any("page 2 do not look like pages of this exam" in note for note in upload.notes)
    matching = ScanPage.objects.get(source_index=0)
    assert matching.template_match >= 30


def test_pages_scanned_in_the_wrong_order_are_flagged_but_kept_in_their_script(exam_with_template, teacher):
    upload = _scan(exam_with_template, teacher, [layout_page(1), layout_page(2), layout_page(2), layout_page(1)])

    assert _script_pages(exam_with_template) == {1: [0, 1], 2: [2, 3]}
    flags = dict(ScanPage.objects.exclude(flag="").values_list("source_index", "flag"))
    assert flags == {
        2: "Looks like page 2 of the exam but is page 1 of its script.",
        3: "Looks like page 1 of the exam but is page 2 of its script.",
    }
    assert "pages 3, 4 seem to be out of order within their scripts." in upload.notes


def test_multi_page_tiff_images_are_accepted_as_scans(exam_with_template, teacher):
    buffer = io.BytesIO()
    first, second = layout_page(1), layout_page(2)
    first.save(buffer, format="TIFF", save_all=True, append_images=[second], dpi=(150, 150))
    intake = scans.scan_files_accept(
        exam=exam_with_template, files=[SimpleUploadedFile("scan.tiff", buffer.getvalue())], user=teacher
    )

    upload = scans.scan_upload_process(upload_id=intake.accepted[0].pk)

    assert upload.kind == "image"
    assert _script_pages(exam_with_template) == {1: [0, 1]}


def test_an_image_without_a_resolution_is_scaled_to_the_template_width(exam_with_template, teacher):
    buffer = io.BytesIO()
    layout_page(1).resize((2480, 3508)).save(buffer, format="PNG")
    intake = scans.scan_files_accept(
        exam=exam_with_template, files=[SimpleUploadedFile("photo.png", buffer.getvalue())], user=teacher
    )

    scans.scan_upload_process(upload_id=intake.accepted[0].pk)

    page = ScanPage.objects.get()
    assert (page.width, page.height) == (1240, 1754)


def test_processing_the_same_upload_twice_does_not_duplicate_pages_or_scripts(exam_with_template, teacher):
    upload = _scan(exam_with_template, teacher, [layout_page(1), layout_page(2)])
    ScanUpload.objects.filter(pk=upload.pk).update(status=ScanUpload.Status.PROCESSING)

    scans.scan_upload_process(upload_id=upload.pk)

    assert ScanPage.objects.count() == 2
    assert Script.objects.count() == 1


def test_a_failure_while_processing_is_recorded_on_the_upload_and_shown(exam_with_template, teacher, client_for):
    _scan(exam_with_template, teacher, [layout_page(1), layout_page(2)], name="first.pdf")
    intake = scans.scan_files_accept(
        exam=exam_with_template, files=[pdf_upload([layout_page(1)], name="second.pdf")], user=teacher
    )
    upload = intake.accepted[0]
    Path(upload.file.path).write_bytes(b"%PDF-1.7 overwritten by a full disk")

    upload = scans.scan_upload_process(upload_id=upload.pk)

    assert upload.status == ScanUpload.Status.FAILED
    assert upload.error == "second.pdf is damaged and cannot be read as a PDF."
    assert Script.objects.count() == 1
    page = client_for(teacher).get(exam_with_template.get_absolute_url()).content.decode()
    assert "second.pdf is damaged and cannot be read as a PDF." in page


# ---------------------------------------------------------------- validation


def test_the_same_file_uploaded_twice_is_recognised_and_not_added_again(exam_with_template, teacher):
    content = pdf_bytes([layout_page(1), layout_page(2)])
    scans.scan_files_accept(exam=exam_with_template, files=[SimpleUploadedFile("a.pdf", content)], user=teacher)

    intake = scans.scan_files_accept(
        exam=exam_with_template, files=[SimpleUploadedFile("copy of a.pdf", content)], user=teacher
    )

    assert intake.accepted == []
    assert "copy of a.pdf has the same content as a.pdf" in intake.duplicates[0]
    assert ScanUpload.objects.count() == 1


def test_the_same_file_uploaded_by_two_teachers_at_once_is_stored_once(exam_with_template, teacher, monkeypatch):
    content = pdf_bytes([layout_page(1), layout_page(2)])
    real_note = scans._upload_duplicate_note
    checks = []

    def other_teacher_wins_the_race(**kwargs):
        # The first check finds nothing; then the other teacher's copy is committed before ours.
        if not checks:
            checks.append(1)
            scans.scan_files_accept(exam=exam_with_template, files=[SimpleUploadedFile("theirs.pdf", content)], user=teacher)
            return False
        return real_note(**kwargs)

    monkeypatch.setattr(scans, "_upload_duplicate_note", other_teacher_wins_the_race)
    intake = scans.scan_files_accept(exam=exam_with_template, files=[SimpleUploadedFile("mine.pdf", content)], user=teacher)

    assert intake.accepted == []
    assert "mine.pdf has the same content as theirs.pdf" in intake.duplicates[0]
    assert ScanUpload.objects.count() == 1


def _encrypted_pdf() -> bytes:
    source = pdf_bytes([layout_page(1)])
    with pikepdf.open(io.BytesIO(source)) as pdf:
        out = io.BytesIO()
        pdf.save(out, encryption=pikepdf.Encryption(owner="owner", user="secret"))
        return out.getvalue()


BAD_FILES = {
    "html behind a pdf name": ("scans.pdf", b"<!DOCTYPE html><html><body>Login</body></html>", "scans.pdf is not a PDF: it looks like a web page"),
    "a zip behind a pdf name": ("scans.pdf", b"PK\x03\x04" + b"\x00" * 100, "scans.pdf is not a PDF: it looks like a ZIP"),
    "an empty file": ("scans.pdf", b"", "scans.pdf is not a PDF: the file is empty"),
    "a truncated pdf": ("scans.pdf", b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog", "scans.pdf is damaged"),
    "a word document": ("notes.docx", b"PK\x03\x04" + b"\x00" * 100, "notes.docx is not a PDF or an image"),
}


@pytest.mark.parametrize("name,content,message", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_scan_files_are_refused_with_a_clear_reason_and_store_nothing(exam_with_template, teacher, name, content, message):
    intake = scans.scan_files_accept(exam=exam_with_template, files=[SimpleUploadedFile(name, content)], user=teacher)

    assert intake.accepted == []
    assert message in intake.rejected[0]
    assert ScanUpload.objects.count() == 0


def test_a_pdf_with_zero_pages_is_refused(exam_with_template, teacher):
    buffer = io.BytesIO()
    pikepdf.new().save(buffer)

    intake = scans.scan_files_accept(
        exam=exam_with_template, files=[SimpleUploadedFile("empty.pdf", buffer.getvalue())], user=teacher
    )

    assert intake.rejected == ["empty.pdf has no pages."]


def test_a_password_protected_pdf_is_refused_with_advice(exam_with_template, teacher):
    intake = scans.scan_files_accept(
        exam=exam_with_template, files=[SimpleUploadedFile("locked.pdf", _encrypted_pdf())], user=teacher
    )

    assert intake.rejected == ["locked.pdf is password-protected. Save it without a password and upload it again."]


def test_a_decompression_bomb_image_is_refused(exam_with_template, teacher, settings):
    settings.MAX_IMAGE_PIXELS = 1_000_000
    buffer = io.BytesIO()
    Image.new("1", (4000, 4000), 1).save(buffer, format="PNG")

    intake = scans.scan_files_accept(
        exam=exam_with_template, files=[SimpleUploadedFile("huge.png", buffer.getvalue())], user=teacher
    )

    assert "huge.png is too large an image" in intake.rejected[0]


def test_a_pdf_page_too_large_to_render_is_refused(exam_with_template, teacher, settings):
    settings.MAX_IMAGE_PIXELS = 1_000_000

    intake = scans.scan_files_accept(
        exam=exam_with_template, files=[pdf_upload([layout_page(1)], name="poster.pdf")], user=teacher
    )

    assert "poster.pdf: page 1 is too large to render" in intake.rejected[0]


def test_a_file_over_the_size_limit_is_refused(exam_with_template, teacher, settings):
    settings.MAX_UPLOAD_MB = 0

    intake = scans.scan_files_accept(exam=exam_with_template, files=[pdf_upload([layout_page(1)])], user=teacher)

    assert "over the 0 MB limit" in intake.rejected[0]


def test_a_scan_file_of_more_pages_than_one_upload_takes_is_refused_and_nothing_is_stored(
    exam_with_template, teacher, client_for, settings
):
    settings.MAX_PAGES_PER_UPLOAD = 3
    stored = set(Path(settings.MEDIA_ROOT).rglob("*"))

    response = client_for(teacher).post(
        reverse("scans_upload", args=[exam_with_template.pk]),
        {"files": [pdf_upload([layout_page(1), layout_page(2)] * 2, name="class-9a.pdf")]},
        follow=True,
    )

    assert ("class-9a.pdf has 4 pages, more than the 3 markdesk takes in one scan file. Split it into smaller "
            "files and upload those; nothing was stored.") in response.content.decode()
    assert not ScanUpload.objects.exists() and not ScanPage.objects.exists()
    assert set(Path(settings.MEDIA_ROOT).rglob("*")) == stored


def test_one_bad_file_does_not_stop_the_good_ones_in_the_same_upload(exam_with_template, teacher):
    intake = scans.scan_files_accept(
        exam=exam_with_template,
        files=[SimpleUploadedFile("bad.pdf", b"nonsense"), pdf_upload([layout_page(1), layout_page(2)], name="good.pdf")],
        user=teacher,
    )

    assert [upload.original_name for upload in intake.accepted] == ["good.pdf"]
    assert len(intake.rejected) == 1


# ---------------------------------------------------------------- through the web


def test_uploading_scans_in_the_browser_queues_processing_and_shows_the_scripts(
    exam_with_template, teacher, client_for, django_capture_on_commit_callbacks
):
    client = client_for(teacher)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("scans_upload", args=[exam_with_template.pk]),
            {"files": [pdf_upload([layout_page(1), layout_page(2)] * 2, name="class-9a.pdf")]},
            follow=True,
        )

    assert "class-9a.pdf: 4 pages queued for processing." in response.content.decode()
    assert ScanUpload.objects.get().status == ScanUpload.Status.DONE
    page = client.get(exam_with_template.get_absolute_url()).content.decode()
    assert "Script 2" in page and "Scripts (2)" in page


def test_a_bad_upload_in_the_browser_shows_the_reason_and_keeps_earlier_scripts(
    exam_with_template, teacher, client_for, django_capture_on_commit_callbacks
):
    _scan(exam_with_template, teacher, [layout_page(1), layout_page(2)])
    client = client_for(teacher)

    response = client.post(
        reverse("scans_upload", args=[exam_with_template.pk]),
        {"files": [SimpleUploadedFile("scans.pdf", b"<html>session expired</html>")]},
        follow=True,
    )

    assert "scans.pdf is not a PDF: it looks like a web page." in response.content.decode()
    assert Script.objects.count() == 1 and ScanPage.objects.count() == 2


def test_an_upload_interrupted_mid_way_stores_nothing_and_says_so(exam_with_template, teacher, client_for):
    boundary = "BoUnDaRy"
    truncated = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"scans.pdf\"\r\n"
        "Content-Type: application/pdf\r\n\r\n%PDF-1.7 partial content"
    ).encode()
    client = client_for(teacher)

    response = client.generic(
        "POST",
        reverse("scans_upload", args=[exam_with_template.pk]),
        truncated,
        content_type=f"multipart/form-data; boundary={boundary}",
    )

    page = client.get(response.url).content.decode()
    assert "Choose a file to upload." in page
    assert ScanUpload.objects.count() == 0


# ---------------------------------------------------------------- rearranging pages


@pytest.fixture
def two_scripts(exam_with_template, teacher):
    _scan(exam_with_template, teacher, [layout_page(1), layout_page(2)] * 2 + [layout_page(1)])
    return exam_with_template


def test_a_teacher_can_swap_the_order_of_pages_in_a_script(two_scripts, teacher, client_for):
    second = ScanPage.objects.get(source_index=1)

    client_for(teacher).post(reverse("page_action", args=[two_scripts.pk, second.pk, "up"]))

    assert _script_pages(two_scripts)[1] == [1, 0]


def test_a_leftover_page_can_be_moved_into_a_script_at_a_position(two_scripts, teacher, client_for):
    leftover = ScanPage.objects.get(source_index=4)

    client_for(teacher).post(
        reverse("page_action", args=[two_scripts.pk, leftover.pk, "move"]), {"script": 2, "position": 1}
    )

    assert _script_pages(two_scripts)[2] == [4, 2, 3]
    leftover.refresh_from_db()
    assert leftover.flag == ""


def test_a_page_moved_between_scripts_leaves_no_gap_behind(two_scripts, teacher, client_for):
    first = ScanPage.objects.get(source_index=0)

    client_for(teacher).post(reverse("page_action", args=[two_scripts.pk, first.pk, "move"]), {"script": 2})

    assert _script_pages(two_scripts) == {1: [1], 2: [2, 3, 0]}
    assert list(Script.objects.get(number=1).pages.values_list("position", flat=True)) == [0]


def test_a_removed_page_is_kept_and_can_be_restored_to_the_tray(two_scripts, teacher, client_for):
    page = ScanPage.objects.get(source_index=3)
    client = client_for(teacher)

    client.post(reverse("page_action", args=[two_scripts.pk, page.pk, "remove"]))
    page.refresh_from_db()
    assert page.discarded and page.script is None
    assert _script_pages(two_scripts)[2] == [2]

    client.post(reverse("page_action", args=[two_scripts.pk, page.pk, "restore"]))
    page.refresh_from_db()
    assert not page.discarded and page.script is None


def test_a_new_empty_script_can_receive_pages_and_an_empty_script_can_be_deleted(two_scripts, teacher, client_for):
    client = client_for(teacher)
    client.post(reverse("script_new", args=[two_scripts.pk]))
    assert Script.objects.filter(number=3).exists()

    leftover = ScanPage.objects.get(source_index=4)
    client.post(reverse("page_action", args=[two_scripts.pk, leftover.pk, "move"]), {"script": 3})
    assert _script_pages(two_scripts)[3] == [4]

    response = client.post(reverse("script_delete", args=[two_scripts.pk, 3]), follow=True)
    assert "still has pages" in response.content.decode()
    client.post(reverse("page_action", args=[two_scripts.pk, leftover.pk, "move"]), {"script": ""})
    client.post(reverse("script_delete", args=[two_scripts.pk, 3]))
    assert not Script.objects.filter(number=3).exists()


def test_the_script_page_shows_each_page_with_move_controls(two_scripts, teacher, client_for):
    page = client_for(teacher).get(reverse("script_detail", args=[two_scripts.pk, 1])).content.decode()

    assert "scans.pdf p.1" in page and "scans.pdf p.2" in page
    assert 'aria-label="Move scans.pdf p.2 earlier"' in page


def test_page_images_and_thumbnails_are_served_to_the_teacher(two_scripts, teacher, client_for):
    page = ScanPage.objects.get(source_index=0)
    client = client_for(teacher)

    full = client.get(reverse("page_image", args=[two_scripts.pk, page.pk]))
    thumb = client.get(reverse("page_image", args=[two_scripts.pk, page.pk]) + "?thumb")

    assert Image.open(io.BytesIO(b"".join(full.streaming_content))).size == (1240, 1754)
    assert Image.open(io.BytesIO(thumb.content)).size[0] == 320

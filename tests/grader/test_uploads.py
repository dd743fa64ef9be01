"""Uploads over their size limit are refused before or while their body is read, never after it was spooled."""

from __future__ import annotations

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, RequestFactory
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.urls import resolve, reverse

from grader.models import Exam, ScanUpload, TemplatePage
from grader.uploads import UploadLimitMiddleware
from tests.conftest import layout_page, pdf_upload

pytestmark = pytest.mark.django_db

MB = 1024 * 1024
HTML = {"HTTP_ACCEPT": "text/html,application/xhtml+xml"}


class _Unreadable(io.RawIOBase):
    """A request body that fails the test if anything reads it."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")

    readline = read


class _Counted(io.BytesIO):
    """A request body that counts how much of it was read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.taken = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.taken += len(chunk)
        return chunk


@pytest.fixture
def csrf_client(teacher) -> Client:
    """A logged-in client held to CSRF checks, as a browser is."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(teacher)
    return client


def _post_declaring(client: Client, url: str, data: dict, declared: int, **extra):
    return client.post(url, data, CONTENT_LENGTH=str(declared), **{"wsgi.input": _Unreadable()}, **extra)


def test_scans_declaring_more_than_the_upload_limit_are_refused_with_a_413_page_before_the_body_is_read(
    exam, csrf_client
):
    url = reverse("scans_upload", args=[exam.pk])

    response = _post_declaring(csrf_client, url, {"files": pdf_upload([layout_page(1)])}, 11 * 1024 * MB, **HTML)

    assert response.status_code == 413
    page = response.content.decode()
    assert "<h1>Upload refused</h1>" in page
    assert "The upload is 11.0\xa0GB, more than the 9.8\xa0GB markdesk accepts at once (200 MB a file)." in page
    assert not ScanUpload.objects.exists()


def test_a_backup_declaring_more_than_the_upload_limit_is_refused_on_the_restore_page_before_it_is_read(csrf_client):
    upload = SimpleUploadedFile("year9.zip", b"PK", content_type="application/zip")

    response = _post_declaring(csrf_client, reverse("exam_restore"), {"file": upload}, 250 * MB, **HTML)

    assert response.status_code == 413
    page = response.content.decode()
    assert "Restore an exam from a backup" in page
    assert "The upload is 250.0\xa0MB, over the 200 MB limit for one file. Nothing was stored. " in page
    assert "An administrator can restore it on the server: manage.py exam_restore" in page
    assert not Exam.objects.exists()


def test_a_client_that_does_not_ask_for_html_gets_the_refusal_as_json(exam, csrf_client):
    url = reverse("template_upload", args=[exam.pk])

    response = _post_declaring(csrf_client, url, {"file": pdf_upload([layout_page(1)])}, 250 * MB)

    assert response.status_code == 413
    assert response.json() == {"error": "The upload is 250.0\xa0MB, over the 200 MB limit for one file. Nothing was stored."}


def test_a_file_over_the_limit_among_scans_is_stopped_as_it_arrives_and_its_partial_file_deleted(
    exam, csrf_client, settings, tmp_path
):
    settings.MAX_UPLOAD_MB = 1
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # every file is written to a temporary file as it arrives
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    big = SimpleUploadedFile("big.pdf", b"%PDF-1.7\n" + b"0" * 3 * MB, content_type="application/pdf")
    body = encode_multipart(BOUNDARY, {"files": [pdf_upload([layout_page(1)], name="small.pdf"), big]})
    stream = _Counted(body)

    response = csrf_client.generic("POST", reverse("scans_upload", args=[exam.pk]), body,
                                   content_type=MULTIPART_CONTENT, **{"wsgi.input": stream}, **HTML)

    assert response.status_code == 413
    assert "big.pdf is over the 1 MB limit for one file. Nothing was stored." in response.content.decode()
    assert stream.taken < 1.2 * MB < len(body) / 2
    assert list(tmp_path.iterdir()) == [] and not ScanUpload.objects.exists()


def test_a_body_longer_than_it_declares_is_counted_and_refused(exam, teacher, settings):
    """What an ASGI server can pass on: Django's parser reads the body to its end, whatever it declared."""
    settings.MAX_UPLOAD_MB = 1
    url = reverse("template_upload", args=[exam.pk])
    request = RequestFactory().post(url, {"file": SimpleUploadedFile("blank.pdf", b"%PDF-1.7\n" + b"0" * 3 * MB)})
    request.META["CONTENT_LENGTH"] = str(MB)
    request.user = teacher

    response = UploadLimitMiddleware(lambda request: None).process_view(request, resolve(url).func, (), {})

    assert response.status_code == 413
    assert json.loads(response.content) == {"error": "blank.pdf is over the 1 MB limit for one file. Nothing was stored."}


def test_an_upload_sent_in_chunks_without_a_length_is_refused_before_it_is_read(exam, teacher):
    url = reverse("scans_upload", args=[exam.pk])
    request = RequestFactory().post(url, {"files": pdf_upload([layout_page(1)])}, HTTP_TRANSFER_ENCODING="chunked",
                                    **{"wsgi.input": _Unreadable()}, **HTML)
    del request.META["CONTENT_LENGTH"]
    request.user = teacher

    response = UploadLimitMiddleware(lambda request: None).process_view(request, resolve(url).func, (), {})

    assert response.status_code == 411
    assert "The upload did not say how large it is (no Content-Length" in response.content.decode()


def test_an_upload_within_the_limits_still_passes_the_csrf_check_and_is_stored(exam, csrf_client, template_pdf):
    csrf_client.get(exam.get_absolute_url())
    token = csrf_client.cookies["csrftoken"].value

    response = csrf_client.post(reverse("template_upload", args=[exam.pk]),
                                {"file": template_pdf, "csrfmiddlewaretoken": token})

    assert response.status_code == 302
    assert TemplatePage.objects.filter(exam=exam).count() == 2

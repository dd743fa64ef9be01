"""Backing up an exam's whole state and restoring it as a new exam, here or on another installation."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tracemalloc
import zipfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from django.apps import apps
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import models
from django.urls import reverse
from django.utils import timezone
from model_bakery import baker
from PIL import Image

from annotations.models import BoxAdjustment, SuggestedBox
from annotations.services import box_save
from grader.grading.models import AnswerChange, AnswerGroupOverride, CompletenessWaiver, ExamStatus
from grader.grading.services import change_revert, score_set
from grader.models import Department, Exam, ScanPage, Script, TemplatePage, User
from grader.outputs.backup import (
    COPIED,
    LEFT_OUT,
    MODELS,
    WAIVER_TARGETS,
    BackupRejected,
    exam_backup_write,
    exam_restore,
)
from grader.outputs.models import EmailDelivery, ExamEmail
from grader.reading.models import Answer, ScriptIdentity
from grader.rubrics.models import AnswerFeedback, DimensionScore, FeedbackComment, QuestionRubric, Rubric, RubricChange
from tests.conftest import layout_page, pdf_bytes

pytestmark = pytest.mark.django_db


def _png(layout: int) -> bytes:
    buffer = io.BytesIO()
    layout_page(layout).convert("L").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def full_exam(scored_exam, teacher, other_teacher):
    """``scored_exam`` with a record of every kind a backup holds, and every kind of stored file."""
    exam = scored_exam
    exam.co_markers.add(other_teacher)
    exam.subject, exam.date, exam.anonymous = "Science", timezone.localdate(), True
    exam.template_pdf.save("blank.pdf", ContentFile(pdf_bytes([layout_page(1), layout_page(2)])), save=False)
    exam.save()
    for index in (0, 1):
        page = TemplatePage(exam=exam, index=index, width=1240, height=1754)
        page.image.save(f"page-{index}.png", ContentFile(_png(index + 1)), save=False)
        page.save()
    upload = exam.uploads.get()
    upload.file.save("scans.pdf", ContentFile(pdf_bytes([layout_page(1), layout_page(2)])))
    script1, script2 = exam.scripts.all()[:2]
    Script.objects.filter(pk=script1.pk).update(comment="Well done: show your working in Q3.")
    q1_box = exam.boxes.get(label="Q1")
    box_save(exam=exam, page=0, bbox=(160, 710, 500, 810), label="", user=teacher, parent=q1_box)
    box_save(exam=exam, page=0, bbox=(510, 710, 990, 810), label="", user=teacher, parent=q1_box)
    BoxAdjustment.objects.create(script=script1, box=q1_box, x1=140, y1=690, x2=1010, y2=830, updated_by=teacher)
    SuggestedBox.objects.create(exam=exam, page=1, x1=150, y1=900, x2=900, y2=1000, score=0.8, source="ink")
    ScriptIdentity.objects.create(
        script=script1, name_text="Ada Lovelace", id_text="S1", class_text="9A", score=0.97, confident=True,
        candidates=[{"student": "S1", "score": 0.97}, {"student": "S2", "score": 0.31}],
        readings={"ID digits": {"easyocr": {"text": "S1"}}}, confirmed_by=teacher, confirmed_at=timezone.now(),
    )
    unscored = Answer.objects.get(script__student__student_id="S4", question__label="Q2")
    score_set(answer_id=unscored.pk, score=Decimal("1"), expected_version=0, user=teacher)
    change = unscored.changes.get()
    change_revert(change_id=change.pk, user=other_teacher)
    flagged = Answer.objects.get(script=script2, question__label="Q1")
    Answer.objects.filter(pk=flagged.pk).update(flagged=True, flag_reason="Low confidence", confirmed_text="1/2")
    AnswerGroupOverride.objects.create(answer=flagged, by=teacher)
    for kind, object_id in (
        (CompletenessWaiver.Kind.UNSCORED, unscored.pk),
        (CompletenessWaiver.Kind.FLAGGED, flagged.pk),
        (CompletenessWaiver.Kind.NO_STUDENT, script2.pk),
        (CompletenessWaiver.Kind.ABSENT, exam.students.get(student_id="S7").pk),
    ):
        CompletenessWaiver.objects.create(exam=exam, kind=kind, object_id=object_id, by=teacher, reason=f"{kind}: fine")
    # Q3 marked by a rubric (the teacher's own, outside the exam): a dimension score, a bank comment, feedback.
    rubric = Rubric.objects.create(owner=teacher, name="Working")
    dimension = rubric.dimensions.create(name="Method", max_points=Decimal("1"),
                                         levels=[{"points": "1", "label": "clear", "description": "every step"}])
    q3 = exam.questions.get(label="Q3")
    QuestionRubric.objects.create(question=q3, rubric=rubric, task="Show your working.")
    rubric_answer = Answer.objects.filter(question=q3).first()
    DimensionScore.objects.create(answer=rubric_answer, dimension=dimension, points=Decimal("1"))
    comment = FeedbackComment.objects.create(question=q3, number=1, text="Show every step.")
    AnswerFeedback.objects.create(answer=rubric_answer, text="Neat.", by=teacher).comments.set([comment])
    RubricChange.objects.create(answer=rubric_answer, by=teacher, old={"points": {}, "comments": [], "text": ""},
                                new={"points": {"Method": "1"}, "comments": [[1, "Show every step."]], "text": "Neat."})
    ExamStatus.objects.create(exam=exam, finished_at=timezone.now(), finished_by=teacher)
    ExamEmail.objects.create(exam=exam, subject="Your {exam} result", body="Dear {name}, {total}/{max}.",
                             tested_digest="d" * 64, tested_at=timezone.now(), tested_to="teacher@example.org")
    for student_id, status in (("S1", EmailDelivery.Status.SENT), ("S2", EmailDelivery.Status.FAILED)):
        EmailDelivery.objects.create(
            exam=exam, student=exam.students.get(student_id=student_id), status=status, to=f"{student_id}@example.org",
            subject="Your result", attempts=1, message_id=f"<{student_id}@markdesk>", queued_at=timezone.now(),
            sent_at=timezone.now() if status == EmailDelivery.Status.SENT else None, queued_by=teacher,
            error="" if status == EmailDelivery.Status.SENT else "Mailbox full",
        )
    return Exam.objects.get(pk=exam.pk)


def _file_digest(value) -> str:
    """The sha256 of a stored file; for a page image, which a restore encodes again, what it is and its size."""
    if not value:
        return ""
    with value.open("rb") as handle:
        if isinstance(value.field, models.ImageField):
            with Image.open(handle) as picture:
                return f"{picture.format} {picture.mode} {picture.width}x{picture.height}"
        return hashlib.sha256(handle.read()).hexdigest()


def _pictures(exam: Exam) -> dict[str, np.ndarray]:
    """The pixels of every page image of ``exam``, by the page they show."""
    pages = [*(("template", page.index, page.image) for page in TemplatePage.objects.filter(exam=exam)),
             *(("scan", page.source_index, page.image) for page in ScanPage.objects.filter(exam=exam))]
    pictures = {}
    for kind, index, image in pages:
        with image.open("rb") as handle, Image.open(handle) as picture:
            pictures[f"{kind} {index}"] = np.asarray(picture, dtype=np.int16)
    return pictures


def _assert_same_pictures(restored: dict[str, np.ndarray], original: dict[str, np.ndarray]) -> None:
    """Restored page images show what the originals showed: encoding a JPEG again moves a few pixels a little."""
    assert restored.keys() == original.keys()
    for key, pixels in original.items():
        assert restored[key].shape == pixels.shape and np.abs(restored[key] - pixels).mean() < 0.1, key


def canonical(exam: Exam, *, exam_fields_skipped: tuple[str, ...] = ("owner", "title")) -> dict[str, list[str]]:
    """Every field of every record of ``exam`` but pks, by model: links are the linked record's own
    canonical form (a department by name), files the sha256 of their contents. A link to a record of
    another exam shows as such, so links left pointing at the original fail the comparison. Links to
    users are left out (a restore makes none: ``_user_links``), but a change's author is its name,
    whether linked or kept as text."""
    records = {kind.model: list(kind.model.objects.filter(**{kind.exam_lookup: exam.pk})) for kind in MODELS}
    inside = {(obj._meta.label_lower, obj.pk) for objs in records.values() for obj in objs}
    memo: dict[tuple[str, int], dict | str] = {}

    def record(obj: models.Model) -> dict | str:
        key = (obj._meta.label_lower, obj.pk)
        if key not in inside:
            return f"{key[0]} of another exam"
        if key in memo:
            return memo[key]
        fields = {}
        for field in obj._meta.concrete_fields:
            if field.primary_key or (isinstance(obj, Exam) and field.name in exam_fields_skipped):
                continue
            if field.related_model is User:
                continue
            if isinstance(obj, AnswerChange) and field.name == "by_name":
                fields["author"] = obj.by.username if obj.by else obj.by_name
            elif field.is_relation:
                target = getattr(obj, field.name)
                if target is None:
                    fields[field.name] = None
                elif isinstance(target, Department):
                    fields[field.name] = str(target)
                elif isinstance(target, Exam) and target.pk == exam.pk:
                    fields[field.name] = "this exam"
                else:
                    fields[field.name] = record(target)
            elif isinstance(field, models.FileField):
                fields[field.name] = _file_digest(getattr(obj, field.name))
            else:
                fields[field.name] = field.value_from_object(obj)
        if isinstance(obj, CompletenessWaiver):
            fields["object_id"] = record(WAIVER_TARGETS[obj.kind].objects.get(pk=obj.object_id))
        memo[key] = fields
        return fields

    return {
        model._meta.label_lower: sorted(json.dumps(record(obj), sort_keys=True, default=str) for obj in objs)
        for model, objs in records.items()
    }


def _user_links(exam: Exam) -> list[str]:
    """Every link from a record of ``exam`` to a user but the exam's owner, as "model.field username"."""
    links = [f"grader.exam.co_markers {user.username}" for user in exam.co_markers.all()]
    for kind in MODELS:
        fields = [f for f in kind.model._meta.concrete_fields if f.related_model is User and f.name != "owner"]
        for obj in kind.model.objects.filter(**{kind.exam_lookup: exam.pk}):
            links += [f"{obj._meta.label_lower}.{f.name} {getattr(obj, f.name).username}"
                      for f in fields if getattr(obj, f.attname) is not None]
    return sorted(links)


def _backup(exam: Exam, progress=None) -> bytes:
    buffer = io.BytesIO()
    exam_backup_write(exam=exam, out=buffer, progress=progress)
    return buffer.getvalue()


def _media_files() -> set[Path]:
    root = Path(settings.MEDIA_ROOT)
    return {path.relative_to(root) for path in root.rglob("*") if path.is_file()}


def _stored_files(exam: Exam) -> list:
    return [
        getattr(obj, field.name)
        for kind in MODELS
        for obj in kind.model.objects.filter(**{kind.exam_lookup: exam.pk})
        for field in kind.model._meta.concrete_fields
        if isinstance(field, models.FileField) and getattr(obj, field.name)
    ]


def test_every_kind_of_exam_record_is_backed_up_or_deliberately_left_out():
    outside = {User, Department}
    belongs = {Exam}
    changed = True
    while changed:
        changed = False
        for model in apps.get_models():
            links = {field.related_model for field in model._meta.concrete_fields if field.is_relation}
            if model not in belongs and links & belongs and model not in outside:
                belongs.add(model)
                changed = True
    assert belongs | set(COPIED) == {kind.model for kind in MODELS} | set(LEFT_OUT)


def test_a_backup_holds_a_manifest_the_records_and_every_stored_file(full_exam):
    calls = []
    data = _backup(full_exam, progress=lambda done, total: calls.append((done, total)))

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        names = set(archive.namelist())
    files = _stored_files(full_exam)
    assert manifest["format"] == "markdesk-exam-backup" and manifest["format_version"] == 1
    assert manifest["exam"] == {"id": full_exam.pk, "title": "Year 9 Science"}
    assert manifest["app_version"] and manifest["created_at"]
    assert manifest["records"]["reading.answer"] == 18 and manifest["missing_files"] == []
    # the template PDF, 2 template pages, the uploaded scans and 12 scan pages
    assert len(files) == manifest["files"] == 16
    assert names == {"manifest.json", "records.json"} | {f"files/{value.name}" for value in files}
    assert calls[0] == (0, 16) and calls[-1] == (16, 16)


def test_a_restored_exam_is_a_new_exam_holding_everything_the_original_held(full_exam, teacher):
    original = canonical(full_exam)
    assert all(original.values()), "the fixture makes records of every kind"

    restored = exam_restore(archive=io.BytesIO(_backup(full_exam)), owner=teacher)

    assert restored.pk != full_exam.pk
    assert restored.title == "Year 9 Science (restored)" and restored.owner == teacher
    assert canonical(restored) == original
    _assert_same_pictures(_pictures(restored), _pictures(full_exam))
    assert canonical(full_exam) == original, "the original is untouched"
    new_names = [value.name for value in _stored_files(restored)]
    assert len(new_names) == 16 and all(name.startswith(f"exams/{restored.pk}/") for name in new_names)
    assert not {value.name for value in _stored_files(full_exam)} & set(new_names)
    assert exam_restore(archive=io.BytesIO(_backup(full_exam)), owner=teacher).title == "Year 9 Science (restored 2)"


def test_a_backup_restores_on_another_installation_after_the_original_is_gone(full_exam, teacher):
    original = canonical(full_exam, exam_fields_skipped=())
    digests = sorted(_file_digest(value) for value in _stored_files(full_exam))
    pictures = _pictures(full_exam)
    data = _backup(full_exam)
    shutil.rmtree(Path(settings.MEDIA_ROOT) / "exams" / str(full_exam.pk))
    full_exam.delete()
    assert not Answer.objects.exists() and not _media_files()

    restored = exam_restore(archive=io.BytesIO(data), owner=teacher)

    assert restored.title == "Year 9 Science"
    assert canonical(restored, exam_fields_skipped=()) == original
    assert sorted(_file_digest(value) for value in _stored_files(restored)) == digests
    _assert_same_pictures(_pictures(restored), pictures)
    identity = ScriptIdentity.objects.get(script__exam=restored)
    assert [c["student"] for c in identity.candidates] == ["S1", "S2"]
    assert {d.student.student_id: d.status for d in restored.email_deliveries.all()} == {"S1": "sent", "S2": "failed"}


def test_a_file_missing_from_storage_is_listed_in_the_manifest_and_the_rest_is_backed_up(full_exam, teacher):
    page = ScanPage.objects.filter(exam=full_exam).first()
    page.image.storage.delete(page.image.name)

    data = _backup(full_exam)

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["missing_files"] == [page.image.name] and manifest["files"] == 15
    restored = exam_restore(archive=io.BytesIO(data), owner=teacher)
    assert not ScanPage.objects.get(exam=restored, upload__sha256=page.upload.sha256, source_index=page.source_index).image
    assert ScanPage.objects.filter(exam=restored).exclude(image="").count() == 11


def test_a_restore_credits_no_account_the_backup_names_and_keeps_the_names_as_text(
    full_exam, teacher, other_teacher, client_for
):
    assert "grader.exam.co_markers other" in _user_links(full_exam)
    assert "grading.answerchange.by other" in _user_links(full_exam)
    restorer = baker.make(User, username="restorer", role=User.Role.TEACHER, is_active=True)

    restored = exam_restore(archive=io.BytesIO(_backup(full_exam)), owner=restorer)

    assert restored.owner == restorer and _user_links(restored) == []
    assert restored.backup_people == ["other", "teacher"]
    answer = restored.scripts.get(number=4).answers.get(question__label="Q2")
    assert sorted(answer.changes.values_list("by_name", flat=True)) == ["other", "teacher"]
    history = client_for(restorer, htmx=True).get(reverse("grading_row", args=[restored.pk, answer.pk]), {"history": "1"})
    assert " · other · score: " in history.content.decode() and " · teacher · score: " in history.content.decode()
    assert client_for(other_teacher).get(restored.get_absolute_url()).status_code == 404


def test_a_backup_made_before_changes_kept_names_restores_them_from_the_accounts_it_named(full_exam, teacher):
    with zipfile.ZipFile(io.BytesIO(_backup(full_exam))) as archive:
        document = json.loads(archive.read("records.json"))
    changes = next(section for section in document["models"] if section["model"] == "grading.answerchange")
    for record in changes["records"]:
        del record["fields"]["by_name"]
    data = _rewritten(_backup(full_exam), put={"records.json": json.dumps(document)})

    restored = exam_restore(archive=io.BytesIO(data), owner=teacher)

    assert canonical(restored) == canonical(full_exam) and _user_links(restored) == []


def test_a_restored_exam_backed_up_and_restored_again_keeps_its_history_names(full_exam, teacher):
    once = exam_restore(archive=io.BytesIO(_backup(full_exam)), owner=teacher)

    twice = exam_restore(archive=io.BytesIO(_backup(once)), owner=teacher)

    assert canonical(twice) == canonical(full_exam) and twice.backup_people == []


def _rewritten(data: bytes, *, drop=(), put=None) -> bytes:
    """The backup ``data`` with members dropped or (re)written."""
    put = put or {}
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            if info.filename not in drop and info.filename not in put:
                target.writestr(info, source.read(info))
        for name, content in put.items():
            target.writestr(name, content)
    return out.getvalue()


def _records_with_a_dangling_link(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        document = json.loads(archive.read("records.json"))
    for section in document["models"]:
        if section["model"] == "reading.answer":
            section["records"][-1]["fields"]["question"] = 999_999
    return _rewritten(data, put={"records.json": json.dumps(document)})


def _without_a_scan_page(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        page = next(name for name in archive.namelist() if "/pages/" in name)
    return _rewritten(data, drop=(page,))


def _with_a_file_replaced(folder: str, content: Callable[[], bytes]) -> Callable[[bytes], bytes]:
    """A spoiler of backups: the first file under ``folder`` (e.g. ``/pages/``) gets ``content()``."""
    def spoil(data: bytes) -> bytes:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            name = next(name for name in archive.namelist() if folder in name)
        return _rewritten(data, put={name: content()})
    return spoil


def _records_with_a_field(value) -> Callable[[bytes], bytes]:
    """A spoiler of backups: one answer's ``readings`` become ``value``."""
    def spoil(data: bytes) -> bytes:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            document = json.loads(archive.read("records.json"))
        section = next(section for section in document["models"] if section["model"] == "reading.answer")
        section["records"][0]["fields"]["readings"] = value
        return _rewritten(data, put={"records.json": json.dumps(document)})
    return spoil


def _gif() -> bytes:
    buffer = io.BytesIO()
    layout_page(1).convert("P").save(buffer, format="GIF")
    return buffer.getvalue()


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"deeper": value}
    return value


# A page "JPEG" that is an SVG: WeasyPrint would render it and follow its links into another exam's
# pages and to the network, if a restore stored it.
SVG_PAGE = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="1240" height="1754">'
    b'<image href="file:///srv/markdesk/media/exams/1/pages/u1-p1.jpg" width="1240" height="1754"/>'
    b'<image href="http://127.0.0.1:6379/" width="1" height="1"/></svg>'
)
NEWER_MANIFEST = {"format": "markdesk-exam-backup", "format_version": 2}
BAD_ARCHIVES = {
    "not a zip": (lambda data: b"%PDF-1.4 not a zip at all", "not a zip archive"),
    "no manifest": (lambda data: _rewritten(data, drop=("manifest.json",)), "has no manifest.json"),
    "a newer format": (
        lambda data: _rewritten(data, put={"manifest.json": json.dumps(NEWER_MANIFEST)}),
        "format version 2; this markdesk reads version 1",
    ),
    "malformed records": (
        lambda data: _rewritten(data, put={"records.json": '{"models": [oops'}),
        "records.json in the backup is not valid JSON",
    ),
    "a missing file": (_without_a_scan_page, "lacks the file 'files/exams/"),
    "a path outside the archive": (
        lambda data: _rewritten(data, put={"../../etc/cron.d/evil": "x"}), "unsafe file name"
    ),
    "a dangling link": (_records_with_a_dangling_link, "links to grader.question 999999, which it does not hold"),
    "a page image that is an SVG": (
        _with_a_file_replaced("/pages/", lambda: SVG_PAGE), r"cannot use: files/exams/\d+/pages/s1p0.jpg is not a PDF or an image"
    ),
    "a page image that is a PDF": (
        _with_a_file_replaced("/template/", lambda: pdf_bytes([layout_page(1)])),
        "should be a page image (one JPEG or PNG picture), not a PDF",
    ),
    "a page image in another format": (_with_a_file_replaced("/pages/", _gif), "not a GIF picture"),
    "scans that are not a PDF": (_with_a_file_replaced("/uploads/", lambda: b"hello"), "scans.pdf is not a PDF: it looks like a text"),
    "records nested beyond the stack": (
        lambda data: _rewritten(data, put={"records.json": '{"models": ' + "[" * 100_000 + "]" * 100_000 + "}"}),
        "records.json in the backup nests deeper than the 32 levels markdesk reads",
    ),
    "a record nested too deep": (_records_with_a_field(_nested(40)), "nests deeper than the 32 levels"),
    "records of a million empty objects": (
        lambda data: _rewritten(data, put={"records.json": "[" + "{}," * 1_000_000 + "{}]"}),
        r"records.json in the backup is too large for a backup of .*: reading it would take more than the 64.0\sMB",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ARCHIVES))
def test_a_bad_archive_is_refused_with_a_clear_message_and_leaves_nothing_behind(full_exam, teacher, case):
    spoil, message = BAD_ARCHIVES[case]
    bad = spoil(_backup(full_exam))
    exams, files = Exam.objects.count(), _media_files()

    with pytest.raises(BackupRejected, match=message.replace("(", r"\(").replace(")", r"\)")):
        exam_restore(archive=io.BytesIO(bad), owner=teacher)

    assert Exam.objects.count() == exams and Answer.objects.count() == 18
    assert _media_files() == files


def test_a_page_image_is_stored_encoded_again_without_what_else_its_file_carried(full_exam, teacher):
    with zipfile.ZipFile(io.BytesIO(_backup(full_exam))) as archive:
        name = next(name for name in archive.namelist() if name.endswith("/pages/s1p0.jpg"))
        original = archive.read(name)
    data = _with_a_file_replaced("/pages/s1p0.jpg", lambda: original + SVG_PAGE)(_backup(full_exam))

    restored = exam_restore(archive=io.BytesIO(data), owner=teacher)

    page = ScanPage.objects.get(exam=restored, source_index=0)
    stored = page.image.read()
    assert stored.startswith(b"\xff\xd8") and b"<svg" not in stored and page.image.name.endswith(".jpg")
    _assert_same_pictures({"page": _pixels(stored)}, {"page": _pixels(original)})


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as picture:
        return np.asarray(picture, dtype=np.int16)


def test_a_small_zip_of_huge_records_is_refused_before_they_are_read(full_exam, teacher):
    with zipfile.ZipFile(io.BytesIO(_backup(full_exam))) as archive:
        manifest = archive.read("manifest.json")
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("manifest.json", manifest)
        archive.writestr("records.json", b'{"models": [' + b"{}," * 26_000_000 + b"{}]}")  # 78 MB
    assert len(bomb.getvalue()) < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(BackupRejected, match=r"records.json in the backup is too large for a backup of \d+\.\d\sKB"):
            exam_restore(archive=bomb, owner=teacher)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, f"refusing it took {peak} bytes"
    assert Exam.objects.count() == 1


def test_an_archive_that_would_unpack_beyond_the_limit_is_refused(full_exam, teacher, settings):
    data = _backup(full_exam)
    settings.MAX_UPLOAD_MB = 0

    with pytest.raises(BackupRejected, match="would unpack to .* more than"):
        exam_restore(archive=io.BytesIO(data), owner=teacher)
    assert Exam.objects.count() == 1


def test_the_commands_back_up_and_restore_an_exam(full_exam, other_teacher, tmp_path, capsys):
    out = tmp_path / "backup.zip"
    call_command("exam_backup", str(full_exam.pk), "--out", str(out))
    call_command("exam_restore", str(out), "--owner", "other")

    restored = Exam.objects.exclude(pk=full_exam.pk).get()
    assert restored.owner == other_teacher and restored.title == "Year 9 Science"
    assert canonical(restored) == canonical(full_exam)
    assert f"Restored 'Year 9 Science' as exam {restored.pk}" in capsys.readouterr().out


def test_the_commands_explain_what_is_wrong(full_exam, head, tmp_path):
    with pytest.raises(CommandError, match="no exam with id 999"):
        call_command("exam_backup", "999", "--out", str(tmp_path / "x.zip"))
    not_a_zip = tmp_path / "notes.zip"
    not_a_zip.write_text("hello")
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        call_command("exam_restore", str(not_a_zip), "--owner", "nobody")
    with pytest.raises(CommandError, match="department head"):
        call_command("exam_restore", str(not_a_zip), "--owner", "head")
    with pytest.raises(CommandError, match="was not restored: The file is not a zip archive"):
        call_command("exam_restore", str(not_a_zip), "--owner", "teacher")


def test_a_teacher_restores_an_uploaded_backup_and_lands_on_the_new_exam(full_exam, other_teacher, client_for):
    client = client_for(other_teacher)
    assert b"Restore an exam from a backup" in client.get(reverse("exam_list")).content
    assert client.get(reverse("exam_restore")).status_code == 200
    upload = SimpleUploadedFile("year9.zip", _backup(full_exam), content_type="application/zip")

    response = client.post(reverse("exam_restore"), {"file": upload}, follow=True)

    restored = Exam.objects.exclude(pk=full_exam.pk).get()
    assert response.redirect_chain[-1][0] == restored.get_absolute_url()
    assert restored.owner == other_teacher
    assert "Restored Year 9 Science from year9.zip." in response.content.decode()
    assert "The backup names other, teacher: as names only, never linked to accounts here." in response.content.decode()


def test_a_department_head_cannot_restore(head, client_for, full_exam):
    client = client_for(head)
    assert client.get(reverse("exam_restore")).status_code == 403
    upload = SimpleUploadedFile("year9.zip", _backup(full_exam), content_type="application/zip")
    assert client.post(reverse("exam_restore"), {"file": upload}).status_code == 403
    assert Exam.objects.count() == 1


def test_a_bad_upload_shows_why_it_was_not_restored(teacher, client_for, settings):
    client = client_for(teacher)
    response = client.post(reverse("exam_restore"), {"file": SimpleUploadedFile("scores.zip", b"not a zip")})
    assert response.status_code == 400
    assert "scores.zip was not restored: The file is not a zip archive" in response.content.decode()

    settings.MAX_UPLOAD_MB = 0
    response = client.post(reverse("exam_restore"), {"file": SimpleUploadedFile("big.zip", b"PK...")})
    assert response.status_code == 413
    assert "big.zip is over the 0 MB limit for one file. Nothing was stored. An administrator can restore it" in (
        response.content.decode())
    assert not Exam.objects.exists()


def test_an_uploaded_backup_nested_too_deep_is_refused_with_a_400_not_a_server_error(full_exam, other_teacher, client_for):
    spoil, _ = BAD_ARCHIVES["records nested beyond the stack"]
    upload = SimpleUploadedFile("deep.zip", spoil(_backup(full_exam)), content_type="application/zip")

    response = client_for(other_teacher).post(reverse("exam_restore"), {"file": upload})

    assert response.status_code == 400
    assert "deep.zip was not restored: records.json in the backup nests deeper" in response.content.decode()
    assert Exam.objects.count() == 1

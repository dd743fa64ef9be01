"""Backup and restore of one exam's whole state as a zip archive.

Archive layout (format ``markdesk-exam-backup``, version 1)::

    manifest.json         {"format": "markdesk-exam-backup", "format_version": 1, "app_version": "0.1.0",
                           "created_at": ISO 8601, "exam": {"id": pk at backup time, "title": str},
                           "records": {model label: count}, "files": count,
                           "missing_files": [storage names the records named but storage lacked]}
    records.json          {"models": [{"model": "grader.exam", "records": [{"pk": int, "fields": {...}}]}, ...]}
    files/<storage name>  every stored file the records name, byte for byte
                          (e.g. ``files/exams/12/pages/s1p0.jpg``)

``records.json`` lists the models of ``MODELS`` in that order: a record links only to records of
models listed before it, or of its own model (``AnswerBox.parent``, ``AnswerChange.reverted_change``).
Field values: links to records of the exam are their pks at backup time; links to users are
usernames and to the department its name (``None`` when empty); many-to-many links are lists of
those; file fields the file's path in the archive (``""`` for none); decimals are strings in marks
("1.50"); dates and times ISO 8601 with their UTC offset; JSON fields as they are.

A restore trusts nothing in the archive. JSON members may cost at most ``JSON_MEMORY_FACTOR`` times the
backup's size (at least ``JSON_MEMORY_FLOOR_MB``) to read and nest at most ``JSON_MAX_DEPTH`` deep. Every
stored file passes the checks of an upload (``ml.pages.document_inspect``: a PDF or image within
``MAX_UPLOAD_MB`` and ``MAX_IMAGE_PIXELS``); page images (image fields) must be one JPEG or PNG picture
and are decoded and encoded again, so only pixels are stored, never what else the file carried. Numbers
must lie within their field's limits (validators and the database column's range).

A restore makes a new exam with new primary keys and every link remapped. The usernames in a backup
are only names, never matched to accounts (anyone can write a backup naming anyone): the restoring
user owns the exam and is its only marker, and every other link to a user is left empty. A change in
the answers' history keeps its author's name as text in ``AnswerChange.by_name`` (from ``by_name``,
or from ``by`` in backups made before that field). The department is matched by name, as a teacher
may choose any department for an exam. ``ScriptIdentity.candidates`` (``[{"student": roster ID, "score": float}]``)
names students by their roster ID, which a restore keeps, so it needs no remapping;
``CompletenessWaiver.object_id`` points at an answer, script or student by kind and is remapped. The
rubrics the exam's questions are marked by (``COPIED``) travel with it: a restore links to the restoring
teacher's own rubric of the same name and dimensions when they have one, and makes them a copy otherwise
(" (restored)" added to a name they already use). The rubric model's suggestions are made again on request.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from importlib import metadata
from os import PathLike
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import DataError, IntegrityError, connection, models, transaction
from django.db.models.fields.files import FieldFile
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from PIL import Image

from annotations.models import AnswerBox, BoxAdjustment, SuggestedBox
from grader.grading.models import AnswerChange, AnswerGroupOverride, CompletenessWaiver, ExamStatus
from grader.models import Department, Exam, Question, ScanPage, ScanUpload, Script, Student, TemplatePage, User
from grader.learning.models import LearningJob
from grader.reading.models import Answer, BoxFrames, ScriptIdentity
from grader.rubrics.models import (
    AnswerFeedback,
    DimensionScore,
    FeedbackComment,
    QuestionRubric,
    Rubric,
    RubricChange,
    RubricDimension,
    RubricSuggestion,
)
from ml import pages as page_tools

from .models import EmailDelivery, ExamEmail, ExportJob

logger = logging.getLogger(__name__)

FORMAT = "markdesk-exam-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
RECORDS = "records.json"
FILES_DIR = "files/"
# A backup unpacks to at most this many times the upload limit: page images and PDFs hardly
# compress, so a larger total can only be a zip bomb (or an exam far beyond any real one).
UNPACKED_FACTOR = 20
_COPY_CHUNK = 1024 * 1024
# Parsed JSON takes far more memory than its text ("{}" is 2 bytes, the dict it becomes 64): a JSON
# member is read only when the estimate below stays within this many times the backup's own size, or
# the floor, whichever is more. Reading a real exam's records takes about a fifth of its backup's size.
JSON_MEMORY_FACTOR = 4
JSON_MEMORY_FLOOR_MB = 64
# Upper bound of the memory one JSON value costs once parsed (a dict or list with its slots, a key, a number).
_JSON_VALUE_BYTES = 100
# markdesk writes records about 8 levels deep; deeper nesting is refused before it can exhaust the stack.
JSON_MAX_DEPTH = 32
# Numbers are checked against their field's limits (a database column's range, a decimal's digits, a
# model's own bounds) before they are written: SQLite cannot store an int beyond 64 bits at all, and
# takes a score of 1e999999999 that nothing could show.
_NUMBER_FIELDS = (models.IntegerField, models.DecimalField, models.FloatField)
# The picture formats markdesk stores page images in (scan pages JPEG, template pages PNG), with their extension.
IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png"}


@dataclass(frozen=True)
class _Kind:
    model: type[models.Model]
    exam_lookup: str  # how the model's records of one exam are found, e.g. "script__exam"


# Dependency order: every link points at a model listed earlier (or at the model itself).
MODELS: tuple[_Kind, ...] = (
    _Kind(Exam, "pk"),
    _Kind(Student, "exam"),
    _Kind(Question, "exam"),
    _Kind(TemplatePage, "exam"),
    _Kind(ScanUpload, "exam"),
    _Kind(Script, "exam"),
    _Kind(ScanPage, "exam"),
    _Kind(AnswerBox, "exam"),
    _Kind(BoxAdjustment, "script__exam"),
    _Kind(SuggestedBox, "exam"),
    _Kind(Answer, "script__exam"),
    _Kind(ScriptIdentity, "script__exam"),
    _Kind(AnswerChange, "answer__script__exam"),
    _Kind(AnswerGroupOverride, "answer__script__exam"),
    _Kind(CompletenessWaiver, "exam"),
    _Kind(ExamStatus, "exam"),
    _Kind(ExamEmail, "exam"),
    _Kind(EmailDelivery, "exam"),
    _Kind(Rubric, "question_links__question__exam"),
    _Kind(RubricDimension, "rubric__question_links__question__exam"),
    _Kind(QuestionRubric, "question__exam"),
    _Kind(DimensionScore, "answer__script__exam"),
    _Kind(FeedbackComment, "question__exam"),
    _Kind(AnswerFeedback, "answer__script__exam"),
    _Kind(RubricChange, "answer__script__exam"),
)
# Records outside the exam that its records need: the rubrics its questions are marked by (a teacher's,
# shared by their exams). A restore makes them the restoring teacher's own copies.
COPIED: tuple[type[models.Model], ...] = (Rubric, RubricDimension)
# Generated files, made again from the records whenever a teacher asks; the reader's ink frames, a
# cache made again by reading (a restored exam matches on the readings until then); fine-tuned readers,
# learned again from the restored corrections on request.
LEFT_OUT: tuple[type[models.Model], ...] = (ExportJob, BoxFrames, LearningJob, RubricSuggestion)
# Records outside the exam, named in the archive by this field; a restore matches departments by it, users never.
NATURAL_KEYS: dict[type[models.Model], str] = {User: "username", Department: "name"}
# What ``CompletenessWaiver.object_id`` points at, by waiver kind.
WAIVER_TARGETS: dict[str, type[models.Model]] = {
    CompletenessWaiver.Kind.UNSCORED: Answer,
    CompletenessWaiver.Kind.FLAGGED: Answer,
    CompletenessWaiver.Kind.NO_STUDENT: Script,
    CompletenessWaiver.Kind.ABSENT: Student,
    CompletenessWaiver.Kind.DUPLICATE: Student,
}


class BackupRejected(ValueError):
    """An archive cannot be restored; the message says why, in words for a teacher."""


def _app_version() -> str:
    try:
        return metadata.version("markdesk")
    except metadata.PackageNotFoundError:
        return "unknown"


def _label(model: type[models.Model]) -> str:
    return model._meta.label_lower


def _data_fields(model: type[models.Model]) -> list[models.Field]:
    return [field for field in model._meta.concrete_fields if not field.primary_key]


# ---------------------------------------------------------------- backup


class _Dumper:
    """Turns records into JSON-ready dicts, collecting the stored files they name."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[Any, str, int]] = {}  # archive path -> (storage, name, size in bytes)
        self.missing: list[str] = []
        self._natural: dict[tuple[type[models.Model], int], str] = {}

    def natural(self, model: type[models.Model], pk: int) -> str:
        if (model, pk) not in self._natural:
            self._natural[model, pk] = model.objects.filter(pk=pk).values_list(NATURAL_KEYS[model], flat=True).first()
        return self._natural[model, pk]

    def file(self, value: FieldFile) -> str:
        if not value:
            return ""
        path = FILES_DIR + value.name
        if path not in self.files:
            if not value.storage.exists(value.name):
                logger.warning("Backup: %s is named by a record but missing from storage; left out", value.name)
                self.missing.append(value.name)
                return ""
            self.files[path] = (value.storage, value.name, value.storage.size(value.name))
        return path

    def value(self, field: models.Field, obj: models.Model) -> Any:
        if field.is_relation:
            pk = getattr(obj, field.attname)
            if pk is None or field.related_model not in NATURAL_KEYS:
                return pk
            return self.natural(field.related_model, pk)
        if isinstance(field, models.FileField):
            return self.file(getattr(obj, field.attname))
        value = field.value_from_object(obj)
        if isinstance(field, models.JSONField) or value is None:
            return value
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, (datetime, date, time)):
            return value.isoformat()
        return value

    def record(self, obj: models.Model) -> dict:
        fields = {field.name: self.value(field, obj) for field in _data_fields(type(obj))}
        for field in type(obj)._meta.many_to_many:
            related = field.related_model
            if related in NATURAL_KEYS:
                fields[field.name] = sorted(getattr(obj, field.name).values_list(NATURAL_KEYS[related], flat=True))
            else:
                fields[field.name] = sorted(getattr(obj, field.name).values_list("pk", flat=True))
        return {"pk": obj.pk, "fields": fields}


def exam_backup_write(*, exam: Exam, out: BinaryIO, progress: Callable[[int, int], None] | None = None) -> None:
    """Write a backup of ``exam`` (every record and stored file, see the module docstring) to ``out``.

    Files are copied into the zip one at a time in 1 MiB chunks; ``progress(done, total)`` is called
    with the number of files copied so far. A file a record names but storage lacks is left out:
    the record's field is ``""`` and the manifest lists the name under ``missing_files``.
    """
    dumper = _Dumper()
    sections = []
    for kind in MODELS:
        # distinct: a rubric marking several of the exam's questions is one record.
        records = kind.model.objects.filter(**{kind.exam_lookup: exam.pk}).order_by("pk").distinct()
        sections.append({"model": _label(kind.model), "records": [dumper.record(obj) for obj in records]})
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "app_version": _app_version(),
        "created_at": timezone.now().isoformat(),
        "exam": {"id": exam.pk, "title": exam.title},
        "records": {section["model"]: len(section["records"]) for section in sections},
        "files": len(dumper.files),
        "missing_files": dumper.missing,
    }
    stamp = timezone.localtime().timetuple()[:6]
    total = len(dumper.files)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, json.dumps(manifest, indent=2))
        archive.writestr(RECORDS, json.dumps({"models": sections}, indent=1))
        if progress:
            progress(0, total)
        for done, (path, (storage, name, size)) in enumerate(dumper.files.items(), start=1):
            info = zipfile.ZipInfo(path, date_time=stamp)
            info.compress_type = zipfile.ZIP_STORED  # JPEGs and PDFs are compressed already
            info.file_size = size  # lets zipfile choose ZIP64 for files over 2 GiB
            with storage.open(name, "rb") as source, archive.open(info, "w") as target:
                shutil.copyfileobj(source, target, _COPY_CHUNK)
            if progress:
                progress(done, total)
    logger.info("Backup of exam %s: %s records, %d files", exam.pk, sum(manifest["records"].values()), total)


# ---------------------------------------------------------------- restore: checking the archive


def _name_unsafe(name: str) -> bool:
    parts = name.split("/")
    return name.startswith("/") or "\\" in name or ":" in parts[0] or any(part in ("..", ".") for part in parts)


def _json_depth_check(value: Any, *, name: str) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > JSON_MAX_DEPTH:
            raise BackupRejected(f"{name} in the backup nests deeper than the {JSON_MAX_DEPTH} levels markdesk reads.")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def _json_member(archive: zipfile.ZipFile, name: str, *, missing: str, archive_size: int) -> Any:
    """The JSON member ``name``, read only when its memory cost stays bounded (see ``JSON_MEMORY_FACTOR``)."""
    try:
        size = archive.getinfo(name).file_size
    except KeyError:
        raise BackupRejected(missing) from None
    allowed = max(JSON_MEMORY_FLOOR_MB * 1024 * 1024, JSON_MEMORY_FACTOR * archive_size)
    too_large = (
        f"{name} in the backup is too large for a backup of {filesizeformat(archive_size)}: reading it would take "
        f"more than the {filesizeformat(allowed)} allowed ({JSON_MEMORY_FACTOR} times the backup's size, at least "
        f"{JSON_MEMORY_FLOOR_MB} MB). It is not a backup markdesk made."
    )
    # Checked on the size the zip declares first (the member cannot unpack beyond it), then on the text.
    if size > settings.MAX_UPLOAD_MB * 1024 * 1024:
        raise BackupRejected(
            f"{name} in the backup is {filesizeformat(size)}, more than the {settings.MAX_UPLOAD_MB} MB markdesk reads."
        )
    if 2 * size > allowed:  # the bytes, then the text decoded from them
        raise BackupRejected(too_large)
    with archive.open(name) as member:
        data = member.read()
    # A value follows a "," or ":", or is a container ("[" or "{") or the first value in one; counting
    # these marks in strings too over-counts, which is safe.
    values = 1 + data.count(b",") + data.count(b":") + 2 * (data.count(b"[") + data.count(b"{"))
    if 2 * len(data) + values * _JSON_VALUE_BYTES > allowed:
        raise BackupRejected(too_large)
    try:
        document = json.loads(data)
    except RecursionError:
        raise BackupRejected(f"{name} in the backup nests deeper than the {JSON_MAX_DEPTH} levels markdesk reads.") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise BackupRejected(f"{name} in the backup is not valid JSON ({error}).") from error
    _json_depth_check(document, name=name)
    return document


def _manifest_check(archive: zipfile.ZipFile, *, archive_size: int) -> dict:
    missing = "The zip has no manifest.json: it is not a markdesk exam backup."
    manifest = _json_member(archive, MANIFEST, missing=missing, archive_size=archive_size)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupRejected("The zip's manifest.json does not describe a markdesk exam backup.")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BackupRejected(
            f"This backup has format version {version!r}; this markdesk reads version {FORMAT_VERSION}. "
            "Restore it with the markdesk version that made it."
        )
    return manifest


def _records_check(archive: zipfile.ZipFile, *, archive_size: int) -> dict[str, list[dict]]:
    """``records.json`` as {model label: records}, its shape and file references checked."""
    document = _json_member(archive, RECORDS, missing="The backup has no records.json: it is incomplete.",
                            archive_size=archive_size)
    kinds = {_label(kind.model): kind.model for kind in MODELS}
    sections = document.get("models") if isinstance(document, dict) else None
    if not isinstance(sections, list):
        raise BackupRejected("records.json in the backup is malformed: it has no list of models.")
    by_label: dict[str, list[dict]] = {}
    for section in sections:
        label = section.get("model") if isinstance(section, dict) else None
        records = section.get("records") if isinstance(section, dict) else None
        if label not in kinds or not isinstance(records, list) or label in by_label:
            raise BackupRejected(f"records.json in the backup is malformed: unexpected section {str(section)[:80]}.")
        for record in records:
            if not (isinstance(record, dict) and isinstance(record.get("pk"), int)
                    and isinstance(record.get("fields"), dict)):
                raise BackupRejected(
                    f"records.json in the backup is malformed: a {label} record lacks its pk or fields."
                )
        by_label[label] = records
    if len(by_label.get(_label(Exam), [])) != 1:
        raise BackupRejected("records.json in the backup is malformed: it must hold exactly one exam.")
    names = set(archive.namelist())
    for label, records in by_label.items():
        file_fields = [field.name for field in _data_fields(kinds[label]) if isinstance(field, models.FileField)]
        for record in records:
            for field_name in file_fields:
                path = record["fields"].get(field_name, "")
                if path and (not isinstance(path, str) or not path.startswith(FILES_DIR) or path not in names):
                    raise BackupRejected(
                        f"The backup lacks the file {str(path)[:120]!r} that a {label} record names: it is incomplete."
                    )
    return by_label


def _archive_open(archive: BinaryIO | str | PathLike) -> zipfile.ZipFile:
    try:
        opened = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, EOFError):
        raise BackupRejected("The file is not a zip archive: a markdesk backup is a .zip file.") from None
    except OSError as error:
        raise BackupRejected(f"The backup cannot be read: {error}.") from error
    limit = settings.MAX_UPLOAD_MB * UNPACKED_FACTOR * 1024 * 1024
    unpacked = 0
    for info in opened.infolist():
        if _name_unsafe(info.filename):
            opened.close()
            raise BackupRejected(
                f"The zip holds an unsafe file name ({info.filename[:120]!r}); it is not a markdesk backup."
            )
        unpacked += info.file_size
    if unpacked > limit:
        opened.close()
        raise BackupRejected(
            f"The zip would unpack to {filesizeformat(unpacked)}, more than the {filesizeformat(limit)} a backup may "
            f"hold ({UNPACKED_FACTOR} times the {settings.MAX_UPLOAD_MB} MB upload limit)."
        )
    return opened


def _archive_size(opened: zipfile.ZipFile) -> int:
    # Every member read seeks to its own offset first, so moving the file's position here is harmless.
    opened.fp.seek(0, os.SEEK_END)
    return opened.fp.tell()


# ---------------------------------------------------------------- restore: making the records


class _Restorer:
    """Builds the new records: remaps links, keeps people as names, copies stored files."""

    def __init__(self, *, archive: zipfile.ZipFile, owner: User, written: list[tuple[Any, str]]) -> None:
        self.archive = archive
        self.owner = owner
        self.written = written  # (storage, name) of every file stored so far, to delete on failure
        self.pks: dict[type[models.Model], dict[int, int]] = {kind.model: {} for kind in MODELS}
        self.people: set[str] = set()  # the usernames the backup links to, none of them linked here
        self.reused: set[tuple[type[models.Model], Any]] = set()  # records linked to existing ones (rubric_reuse)
        self._natural: dict[tuple[type[models.Model], str], int | None] = {}

    def natural(self, model: type[models.Model], key: Any) -> int | None:
        if (model, key) not in self._natural:
            pk = model.objects.filter(**{NATURAL_KEYS[model]: key}).values_list("pk", flat=True).first()
            self._natural[model, key] = pk
        return self._natural[model, key]

    def link(self, model: type[models.Model], target: type[models.Model], value: Any) -> int | None:
        if value is None:
            return None
        if target is User:
            self.people.add(str(value)[:150])
            return None
        if target in NATURAL_KEYS:
            return self.natural(target, value)
        if target not in self.pks:
            raise BackupRejected(f"records.json in the backup is malformed: {_label(model)} links to {_label(target)}.")
        try:
            return self.pks[target][value]
        except (KeyError, TypeError):
            raise BackupRejected(
                f"The backup is inconsistent: a {_label(model)} record links to {_label(target)} {value!r}, "
                "which it does not hold."
            ) from None

    # Per-model hooks: the few fields the generic rules cannot restore. ``None`` drops the record.

    def _exam_fields(self, fields: dict) -> dict:
        title = str(fields.get("title") or "Restored exam")[:200]
        taken = set(
            Exam.objects.filter(owner=self.owner, title__startswith=title[:180]).values_list("title", flat=True)
        )
        candidate, n = title, 1
        while candidate in taken:
            suffix = " (restored)" if n == 1 else f" (restored {n})"
            candidate, n = title[: 200 - len(suffix)] + suffix, n + 1
        department = fields.get("department")
        department_pk = self.natural(Department, department) if department is not None else None
        return {"title": candidate, "owner_id": self.owner.pk,
                "department_id": department_pk if department_pk is not None else self.owner.department_id}

    def rubric_reuse(self, by_label: dict[str, list[dict]]) -> None:
        """Map each rubric of the backup to the restoring teacher's rubric of the same name and the same
        dimensions (names, max points, levels), when they have one: the exam links to it and no copy is made."""
        dimensions = by_label.get(_label(RubricDimension), [])
        for record in by_label.get(_label(Rubric), []):
            fields = record["fields"]
            existing = Rubric.objects.filter(owner=self.owner, name=fields.get("name")).first()
            if existing is None:
                continue
            mine = {d.name: d for d in existing.dimensions.all()}
            theirs = [d for d in dimensions if d["fields"].get("rubric") == record["pk"]]
            try:
                same = len(theirs) == len(mine) and all(
                    d["fields"].get("name") in mine
                    and mine[d["fields"]["name"]].max_points == Decimal(str(d["fields"].get("max_points")))
                    and mine[d["fields"]["name"]].levels == d["fields"].get("levels")
                    for d in theirs)
            except (ArithmeticError, TypeError, ValueError):
                same = False  # a malformed record: the generic restore refuses it
            if same:
                self.pks[Rubric][record["pk"]] = existing.pk
                for d in theirs:
                    self.pks[RubricDimension][d["pk"]] = mine[d["fields"]["name"]].pk
                self.reused.update({(Rubric, record["pk"]), *((RubricDimension, d["pk"]) for d in theirs)})

    def _rubric_fields(self, fields: dict) -> dict:
        """A copy for the restoring teacher, named apart from the rubrics they have."""
        name = str(fields.get("name") or "Restored rubric")[:200]
        taken = set(Rubric.objects.filter(owner=self.owner, name__startswith=name[:180]).values_list("name", flat=True))
        candidate, n = name, 1
        while candidate in taken:
            suffix = " (restored)" if n == 1 else f" (restored {n})"
            candidate, n = name[: 200 - len(suffix)] + suffix, n + 1
        return {"name": candidate, "owner_id": self.owner.pk}

    def _change_fields(self, fields: dict) -> dict:
        name = next((value for value in (fields.get("by_name"), fields.get("by")) if isinstance(value, str) and value), "")
        return {"by_name": name[:150]}

    def _waiver_fields(self, fields: dict) -> dict | None:
        kind = fields.get("kind")
        target = WAIVER_TARGETS.get(kind) if isinstance(kind, str) else None
        if target is None:
            raise BackupRejected(f"records.json in the backup is malformed: unknown waiver kind {kind!r}.")
        new_pk = self.pks[target].get(fields.get("object_id"))
        if new_pk is None:
            return None  # the waived item was deleted before the backup: nothing left to waive
        return {"object_id": new_pk}

    def build(self, model: type[models.Model], fields: dict) -> models.Model | None:
        hooks = {Exam: self._exam_fields, AnswerChange: self._change_fields, CompletenessWaiver: self._waiver_fields,
                 Rubric: self._rubric_fields}
        overrides = hooks.get(model, lambda _: {})(fields)
        if overrides is None:
            return None
        obj = model()
        for field in _data_fields(model):
            if field.attname in overrides:
                setattr(obj, field.attname, overrides[field.attname])
            elif field.name not in fields or isinstance(field, models.FileField):
                continue  # missing: the field's default; files are stored once the record has its pk
            elif field.is_relation:
                setattr(obj, field.attname, self.link(model, field.related_model, fields[field.name]))
            else:
                value = field.to_python(fields[field.name])
                if isinstance(field, _NUMBER_FIELDS):
                    field.run_validators(value)
                setattr(obj, field.attname, value)
        return obj

    def files_store(self, obj: models.Model, fields: dict) -> list[str]:
        """Store the record's files from the archive, checked (``_file_checked``), under their new
        storage paths; return the names of the fields that changed."""
        changed = []
        for field in _data_fields(type(obj)):
            path = fields.get(field.name) if isinstance(field, models.FileField) else None
            if not path:
                continue
            with tempfile.NamedTemporaryFile(prefix="markdesk-restore-") as spool:
                name, content = _file_checked(self.archive, path, spool=spool,
                                              image=isinstance(field, models.ImageField))
                field_file = getattr(obj, field.attname)
                field_file.save(name, content, save=False)
            self.written.append((field_file.storage, field_file.name))
            changed.append(field.name)
        return changed

    def model_restore(self, model: type[models.Model], records: list[dict]) -> None:
        self_links = [f.name for f in _data_fields(model) if f.is_relation and f.related_model is model]
        pending = [record for record in records if (model, record.get("pk")) not in self.reused]
        while pending:
            # Records whose own-model links are already made go in first (a step box after its parent).
            made = self.pks[model]
            ready = [r for r in pending if all(r["fields"].get(name) is None or r["fields"][name] in made
                                               for name in self_links)]
            if not ready:
                raise BackupRejected(
                    f"The backup is inconsistent: {_label(model)} records link to ones it does not hold."
                )
            self._batch_restore(model, ready)
            done = {id(record) for record in ready}
            pending = [record for record in pending if id(record) not in done]

    def _batch_restore(self, model: type[models.Model], records: list[dict]) -> None:
        built = [(record, self.build(model, record["fields"])) for record in records]
        built = [(record, obj) for record, obj in built if obj is not None]
        _insert(model, [obj for _, obj in built])
        stamped = [f for f in _data_fields(model) if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)]
        updated: set[str] = set()
        for record, obj in built:
            if record["pk"] in self.pks[model]:
                raise BackupRejected(f"The backup is inconsistent: two {_label(model)} records have pk {record['pk']}.")
            self.pks[model][record["pk"]] = obj.pk
            fields = record["fields"]
            updated.update(self.files_store(obj, fields))
            for field in stamped:  # the insert set them to the present time
                if field.name in fields:
                    setattr(obj, field.attname, field.to_python(fields[field.name]))
                    updated.add(field.name)
            for field in model._meta.many_to_many:
                targets = [self.link(model, field.related_model, value) for value in fields.get(field.name, [])]
                getattr(obj, field.name).set([pk for pk in targets if pk is not None])
        if updated:
            model.objects.bulk_update([obj for _, obj in built], sorted(updated), batch_size=500)


def _file_checked(archive: zipfile.ZipFile, path: str, *, spool: IO[bytes], image: bool) -> tuple[str, File]:
    """The archive's file ``path`` as it may be stored: its file name and content (from ``spool``, an
    empty named temporary file).

    Checked as an upload is (size, PDF or image content, pixel limits). An image field's file must be
    one JPEG or PNG picture, and is stored encoded again from its pixels: whatever else the file holds
    (a second format behind the first, metadata) is dropped. A file that fails is refused by name.
    """
    name = PurePosixPath(path).name
    limit = settings.MAX_UPLOAD_MB * 1024 * 1024
    size = archive.getinfo(path).file_size
    if size > limit:
        raise BackupRejected(
            f"{path} in the backup is {filesizeformat(size)}, over the {settings.MAX_UPLOAD_MB} MB limit for one file."
        )
    with archive.open(path) as member:
        shutil.copyfileobj(member, spool, _COPY_CHUNK)
    spool.flush()
    try:
        info = page_tools.document_inspect(path=Path(spool.name), name=path,
                                           max_pixels=settings.MAX_IMAGE_PIXELS, dpi=settings.PAGE_DPI)
    except page_tools.DocumentError as error:
        raise BackupRejected(f"The backup holds a file markdesk cannot use: {error}") from error
    spool.seek(0)
    if not image:
        return name, File(spool)
    unusable = f"The backup holds a file markdesk cannot use: {path} should be a page image (one JPEG or PNG picture)"
    if info.kind != "image" or info.page_count != 1:
        raise BackupRejected(f"{unusable}, not a {'PDF' if info.kind == 'pdf' else 'file of several pictures'}.")
    encoded = io.BytesIO()
    try:
        with Image.open(spool) as picture:
            format = picture.format
            if format in IMAGE_FORMATS:
                picture.load()
                # quality="keep" reuses the JPEG's own quantisation: no visible loss from encoding it again.
                options = {"quality": "keep"} if format == "JPEG" else {}
                if "dpi" in picture.info:
                    options["dpi"] = picture.info["dpi"]
                picture.save(encoded, format=format, **options)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BackupRejected(f"The backup holds a file markdesk cannot use: {path} is a damaged image ({error}).") from error
    if format not in IMAGE_FORMATS:
        raise BackupRejected(f"{unusable}, not a {format} picture.")
    return PurePosixPath(name).stem + IMAGE_FORMATS[format], File(encoded)


def _insert(model: type[models.Model], objs: list[models.Model]) -> None:
    if connection.features.can_return_rows_from_bulk_insert:
        model.objects.bulk_create(objs, batch_size=500)
    else:
        for obj in objs:
            obj.save(force_insert=True)


@transaction.atomic
def _records_restore(*, restorer: _Restorer, by_label: dict[str, list[dict]]) -> Exam:
    restorer.rubric_reuse(by_label)
    for kind in MODELS:
        try:
            restorer.model_restore(kind.model, by_label.get(_label(kind.model), []))
        except (ValidationError, ValueError, TypeError, IntegrityError, DataError) as error:
            if isinstance(error, BackupRejected):
                raise
            message = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
            raise BackupRejected(
                f"records.json in the backup is malformed: a {_label(kind.model)} record cannot be restored "
                f"({message})."
            ) from error
    [exam_pk] = restorer.pks[Exam].values()
    return Exam.objects.get(pk=exam_pk)


def _files_delete(written: Iterable[tuple[Any, str]]) -> None:
    for storage, name in written:
        try:
            storage.delete(name)
        except OSError:
            logger.exception("Restore: could not delete %s after a failed restore", name)


def exam_restore(*, archive: BinaryIO | str | PathLike, owner: User) -> Exam:
    """Restore a backup (a path or an open binary file) as a new exam owned by ``owner``; return it.

    The archive is checked first (a zip; its manifest; format version 1; valid records.json within the
    JSON memory and depth limits; every named file present; no unsafe names; unpacked size within
    ``MAX_UPLOAD_MB`` x ``UNPACKED_FACTOR``), then every record is made in one transaction with new pks
    and remapped links, and its files are checked like uploads (page images encoded again) and stored
    under the new exam's storage paths. The title is kept, with " (restored)" added when
    ``owner`` already has an exam of that title. ``owner`` is its only marker: no user the backup names
    is linked (see the module docstring). Raises ``BackupRejected`` with a message for the teacher;
    then no record is made and no file is left behind.

    The returned exam carries ``backup_people``: the sorted usernames the backup links records to
    (co-markers, scorers, authors of changes), none of them linked to an account here.
    """
    with _archive_open(archive) as opened:
        archive_size = _archive_size(opened)
        written: list[tuple[Any, str]] = []
        restorer = _Restorer(archive=opened, owner=owner, written=written)
        try:
            manifest = _manifest_check(opened, archive_size=archive_size)
            by_label = _records_check(opened, archive_size=archive_size)
            exam = _records_restore(restorer=restorer, by_label=by_label)
        except BaseException as error:
            _files_delete(written)
            if isinstance(error, (zipfile.BadZipFile, zlib.error, EOFError)):
                raise BackupRejected(f"The backup is damaged: {error}.") from error
            raise
    exam.backup_people = sorted(restorer.people)
    logger.info(
        "Restored exam %r (backup of exam %s, made %s by markdesk %s) as exam %s for %s; %d files; "
        "people named, linked to no account: %s",
        exam.title, manifest.get("exam", {}).get("id"), manifest.get("created_at"), manifest.get("app_version"),
        exam.pk, owner.username, len(written), ", ".join(exam.backup_people) or "none",
    )
    return exam

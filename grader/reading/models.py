"""What the engines read in every answer box, the suggested score, and who each script belongs to.

Crops are ``[x1, y1, x2, y2]`` in scan-page pixels at 150 dpi (the page the answer was read on).
Scores are in marks (``Decimal``); similarity is in [0, 1].
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from grader.models import Question, ScanPage, Script


class Answer(models.Model):
    """One script's answer to one question.

    ``readings`` holds every engine's result: ``{"easyocr": {"text": str | None, "confidence": float | None}}``
    (text ``None`` = the engine did not read it). ``text`` is the transcription used for suggestions:
    the teacher's ``confirmed_text`` when set, else the known answer the ink fits (``fit_text``, see
    ``ml.marking``), else the best engine reading. ``score`` is the teacher's
    mark; until they set one, the grading form shows ``suggested_score``.
    """

    script = models.ForeignKey(Script, on_delete=models.CASCADE, related_name="answers")
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="answers")
    page = models.ForeignKey(ScanPage, null=True, blank=True, on_delete=models.SET_NULL, related_name="answers")
    crop = models.JSONField(null=True, blank=True, help_text="[x1, y1, x2, y2] scan pixels of the box read")
    blank = models.BooleanField(default=False, help_text="No ink beyond the printed template")
    readings = models.JSONField(default=dict, blank=True)
    text = models.TextField(blank=True)
    confidence = models.FloatField(null=True, blank=True)
    flagged = models.BooleanField(default=False)
    flag_reason = models.CharField(max_length=200, blank=True)
    confirmed_text = models.TextField(null=True, blank=True)
    similarity = models.FloatField(null=True, blank=True)
    similarity_strategy = models.CharField(max_length=16, blank=True)
    fit_text = models.TextField(blank=True, help_text="The known answer (key or teacher-scored) the ink fits, if any")
    suggestion_reason = models.CharField(max_length=200, blank=True, help_text="Why the suggested score, for the teacher")
    suggested_score = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    score = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    scored_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    scored_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=0, help_text="Bumped on every teacher change, for stale-save checks")
    read_at = models.DateTimeField(null=True, blank=True)
    read_error = models.TextField(blank=True)

    class Meta:
        ordering = ["script__number", "question__order"]
        constraints = [models.UniqueConstraint(fields=["script", "question"], name="unique_answer_per_script_question")]

    def __str__(self) -> str:
        return f"Script {self.script.number} {self.question.label}"


class ScriptIdentity(models.Model):
    """What was written in a script's NAME, ID and CLASS boxes, and how well it matched the roster.

    ``score`` is the match score in [0, 1] of ``script.student``; ``confirmed_by`` is set once a teacher
    picked or confirmed the student, after which automatic matching leaves the script alone.
    """

    script = models.OneToOneField(Script, on_delete=models.CASCADE, related_name="identity")
    name_text = models.CharField(max_length=200, blank=True)
    id_text = models.CharField(max_length=64, blank=True)
    class_text = models.CharField(max_length=64, blank=True)
    readings = models.JSONField(default=dict, blank=True)
    score = models.FloatField(null=True, blank=True)
    candidates = models.JSONField(default=list, blank=True, help_text="[{student, score}] best first")
    confident = models.BooleanField(default=False)
    confirmed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)


class BoxFrames(models.Model):
    """A CTC engine's per-frame character log-probabilities for the ink of one box on one script
    (``ml.recognition.fit.Frames.to_bytes``), kept so candidate texts (roster names, key answers,
    texts a teacher scored) can be scored against the ink at any time without reading again.

    A cache: deleted with the script or box, absent for blank boxes and other engines, and not part
    of backups (a restored exam falls back to matching on the readings until it is read again).
    """

    script = models.ForeignKey(Script, on_delete=models.CASCADE, related_name="box_frames")
    box = models.ForeignKey("annotations.AnswerBox", on_delete=models.CASCADE, related_name="frames")
    engine = models.CharField(max_length=16)
    data = models.BinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["script", "box", "engine"], name="unique_frames_per_script_box")]

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.conf import settings

from .models import RESERVED_LABELS, Exam, Question, Student, User
from .labels import QUESTION_LABEL_PATTERN, question_label_normalise
from .services import accept_split


class ExamForm(forms.ModelForm):
    # Shown apart, under "Scoring defaults": a first-time teacher can leave them as they are.
    SCORING_FIELDS = ("default_min_similarity", "default_granularity")

    def main_fields(self) -> list:
        return [field for field in self if field.name not in self.SCORING_FIELDS]

    def scoring_fields(self) -> list:
        return [self[name] for name in self.SCORING_FIELDS]

    class Meta:
        model = Exam
        fields = [
            "title",
            "subject",
            "date",
            "department",
            "classes",
            "pages_per_script",
            "anonymous",
            "drop_blank_pages",
            "default_min_similarity",
            "default_granularity",
            "co_markers",
        ]
        widgets = {
            "default_min_similarity": forms.NumberInput(attrs={"step": "0.01", "min": "0", "max": "1"}),
            "default_granularity": forms.NumberInput(attrs={"step": "0.01", "min": "0.01"}),
            # <input type="date"> only takes ISO dates; the en-gb default (15/01/2027) shows empty and saves blank
            "date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            # A list of checkboxes posts the same field with or without JavaScript; static/js/pick-list.js
            # adds a filter over it (grader/_form_fields.html) so a long staff list is found by typing.
            "co_markers": forms.CheckboxSelectMultiple,
        }
        labels = {"co_markers": "Co-markers"}
        help_texts = {"co_markers": "Teachers who may mark this exam with you: type to find a name, Space or Enter ticks it."}

    def __init__(self, *args, owner: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["co_markers"].queryset = User.objects.filter(
            is_active=True, role__in=[User.Role.TEACHER, User.Role.ADMIN]
        ).exclude(pk=owner.pk).order_by("last_name", "username")
        self.fields["co_markers"].label_from_instance = lambda user: user.get_full_name() or user.username
        if not self.instance.pk:
            self.initial.setdefault("department", owner.department_id)
            self.initial.setdefault("drop_blank_pages", settings.DROP_BLANK_PAGES_DEFAULT)

        # Left empty (or not posted), a scoring default keeps the exam's value: the model default for a new exam.
        for name in ("default_min_similarity", "default_granularity"):
            self.fields[name].required = False

    def clean_default_min_similarity(self) -> float:
        value = self.cleaned_data["default_min_similarity"]
        return self.instance.default_min_similarity if value is None else value

    def clean_default_granularity(self) -> Decimal:
        value = self.cleaned_data["default_granularity"]
        granularity = self.instance.default_granularity if value is None else value
        if granularity <= 0:
            raise forms.ValidationError("The granularity must be more than 0 (e.g. 0.5 or 1).")
        return granularity  # whether the key's max scores fit it is services.exam_update's rule


class StudentForm(forms.ModelForm):
    class Meta:
        model = Student
        fields = ["student_id", "name", "class_name", "email"]

    def clean_student_id(self) -> str:
        student_id = self.cleaned_data["student_id"].strip()
        clash = Student.objects.filter(exam_id=self.instance.exam_id, student_id=student_id).exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError(f"{student_id} is already on the roster ({clash.first().name}).")
        return student_id


class QuestionForm(forms.ModelForm):
    accept_text = forms.CharField(
        label="Also accept",
        required=False,
        help_text="Other accepted answers, separated by |",
    )

    class Meta:
        model = Question
        fields = ["label", "answer", "accept_text", "max_score"]
        widgets = {"answer": forms.TextInput()}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["accept_text"].initial = " | ".join(self.instance.accept or [])
        self.fields["max_score"].min_value = Decimal("0")

    def clean_label(self) -> str:
        label = question_label_normalise(self.cleaned_data["label"])
        if label.upper() in RESERVED_LABELS:
            raise forms.ValidationError("NAME, ID and CLASS are the student's details, not questions.")
        if not QUESTION_LABEL_PATTERN.fullmatch(label):
            # the rule the Excel import applies, so both ways into the key accept the same labels
            raise forms.ValidationError("Use labels like Q1, Q2a or 3 (letters, digits, at most 32).")
        clash = Question.objects.filter(exam_id=self.instance.exam_id, label=label).exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError(f"{label} is already in the answer key.")
        return label

    def clean_max_score(self) -> Decimal:
        value = self.cleaned_data["max_score"]
        if value is not None and value < 0:
            raise forms.ValidationError("The max score cannot be negative.")
        return value

    def clean(self) -> dict:
        """The key entry as ``services.question_save`` takes it: ``accept`` a list, not ``accept_text``."""
        cleaned = super().clean()
        cleaned["accept"] = accept_split(cleaned.pop("accept_text", "") or "")
        return cleaned


class SpreadsheetForm(forms.Form):
    file = forms.FileField(label="Excel file (.xlsx)", widget=forms.ClearableFileInput(attrs={"accept": ".xlsx"}))


class TemplateForm(forms.Form):
    file = forms.FileField(label="Blank exam (PDF)", widget=forms.ClearableFileInput(attrs={"accept": ".pdf"}))


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ".pdf,image/*", "multiple": True}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        items = [item for item in data if item] if isinstance(data, (list, tuple)) else [data] if data else []
        if not items:
            if self.required:
                raise forms.ValidationError(self.error_messages["required"], code="required")
            return []
        return [super(MultipleFileField, self).clean(item, initial) for item in items]


class ScanUploadForm(forms.Form):
    files = MultipleFileField(label="Scanned scripts (PDF or images)")


class PageMoveForm(forms.Form):
    """Where a page goes: a script number and a 1-based position, or the tray when no script is given."""

    script = forms.IntegerField(required=False, min_value=1)
    position = forms.IntegerField(required=False, min_value=1)

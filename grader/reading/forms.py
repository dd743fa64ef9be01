from __future__ import annotations

from decimal import Decimal

from django import forms

from grader.inputs import whole_number_parse
from grader.models import Question, Student
from ml.scoring import marks_text

from . import services


class QuestionSettingsForm(forms.ModelForm):
    """How one question is scored. Empty minimum similarity or granularity means the exam's default."""

    class Meta:
        model = Question
        fields = ["max_score", "min_similarity", "granularity", "strategy", "lowest_terms"]
        labels = {
            "max_score": "Max score",
            "min_similarity": "Minimum similarity",
            "granularity": "Score granularity",
            "strategy": "Similarity",
            "lowest_terms": "Fractions must be in lowest terms",
        }
        widgets = {
            "max_score": forms.NumberInput(attrs={"step": "0.01", "min": "0"}),
            "min_similarity": forms.NumberInput(attrs={"step": "0.01", "min": "0", "max": "1"}),
            "granularity": forms.NumberInput(attrs={"step": "0.01", "min": "0.01"}),
        }

    def __init__(self, *args, auto_strategy: str, **kwargs):
        super().__init__(*args, **kwargs)
        exam = self.instance.exam
        self.fields["max_score"].min_value = Decimal("0")
        total = self.instance.rubric_total()
        if total is not None:
            # A posted value is ignored: the maximum follows the rubric's dimensions.
            self.fields["max_score"].disabled = True
            self.initial["max_score"] = total
            self.fields["max_score"].help_text = (
                f"Marked by a rubric: the max score is its total, {marks_text(total)}. "
                "Change the rubric's dimensions to change it.")
        self.fields["min_similarity"].widget.attrs["placeholder"] = f"exam default {marks_text(exam.default_min_similarity)}"
        self.fields["min_similarity"].help_text = (
            f"Answers at least this similar (0-1) get full marks. Empty: the exam's default, {marks_text(exam.default_min_similarity)}."
        )
        self.fields["granularity"].widget.attrs["placeholder"] = f"exam default {marks_text(exam.default_granularity)}"
        self.fields["granularity"].help_text = (
            f"Scores are multiples of this. Empty: the exam's default, {marks_text(exam.default_granularity)}."
        )
        picked = "no key answer yet" if auto_strategy == "auto" else f"picks {auto_strategy} for this key"
        self.fields["strategy"].choices = [
            (value, f"Auto ({picked})" if value == "auto" else label) for value, label in self.fields["strategy"].choices
        ]
        self.fields["strategy"].help_text = (
            "Exact: the same after normalising case and spaces; numeric: the same number (3/4 = 0.75); "
            "fuzzy: character similarity; semantic: the same meaning in other words."
        )

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        exam = self.instance.exam
        candidate = Question(
            exam=exam,
            label=self.instance.label,
            max_score=cleaned["max_score"],
            min_similarity=cleaned.get("min_similarity"),
            granularity=cleaned.get("granularity"),
        )
        if services.question_rule(candidate) is None:
            granularity = candidate.effective_granularity
            whose = "the exam's default granularity" if cleaned.get("granularity") is None else "the granularity"
            raise forms.ValidationError(
                f"A max score of {marks_text(cleaned['max_score'])} is not a multiple of {whose} {marks_text(granularity)}, "
                "so it could never be given. Change the max score or the granularity."
            )
        return cleaned


class IdentityChoiceForm(forms.Form):
    """A teacher's answer to "whose script is this?": a student of the exam, or ``none`` (not on the roster)."""

    NONE = "none"
    student = forms.CharField()

    def __init__(self, *args, exam, **kwargs):
        super().__init__(*args, **kwargs)
        self.exam = exam

    def clean_student(self) -> Student | None:
        value = self.cleaned_data["student"].strip()
        if value == self.NONE:
            return None
        student_pk = whole_number_parse(value)
        student = self.exam.students.filter(pk=student_pk).first() if student_pk is not None else None
        if student is None:
            raise forms.ValidationError("Choose a student on this exam's roster, or “not on the roster”.")
        return student

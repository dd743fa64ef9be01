from django.contrib import admin

from .models import AnswerChange, AnswerGroupOverride, CompletenessWaiver, ExamStatus


@admin.register(AnswerChange)
class AnswerChangeAdmin(admin.ModelAdmin):
    list_display = ("answer", "field", "old_value", "new_value", "by", "at", "reverted_change")
    list_filter = ("field",)
    raw_id_fields = ("answer", "reverted_change")


@admin.register(AnswerGroupOverride)
class AnswerGroupOverrideAdmin(admin.ModelAdmin):
    list_display = ("answer", "detached", "by", "at")
    raw_id_fields = ("answer",)


@admin.register(CompletenessWaiver)
class CompletenessWaiverAdmin(admin.ModelAdmin):
    list_display = ("exam", "kind", "object_id", "by", "at", "reason")
    list_filter = ("kind",)


@admin.register(ExamStatus)
class ExamStatusAdmin(admin.ModelAdmin):
    list_display = ("exam", "finished_at", "finished_by")

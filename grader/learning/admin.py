from django.contrib import admin

from .models import LearningJob


@admin.register(LearningJob)
class LearningJobAdmin(admin.ModelAdmin):
    list_display = ("__str__", "exam", "status", "stage", "created_by", "created_at", "finished_at")
    list_filter = ("status",)
    readonly_fields = ("metrics",)

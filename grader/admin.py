from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from .models import Department, Exam, Question, ScanPage, ScanUpload, Script, Student, TemplatePage, User


@admin.register(User)
class MarkdeskUserAdmin(UserAdmin):
    fieldsets = (*UserAdmin.fieldsets, ("markdesk", {"fields": ("role", "department")}))
    add_fieldsets = (*UserAdmin.add_fieldsets, ("markdesk", {"fields": ("role", "department")}))
    list_display = ("username", "first_name", "last_name", "role", "department", "is_active")
    list_filter = ("role", "department", "is_active")


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    search_fields = ("name",)


class StudentInline(admin.TabularInline):
    model = Student
    extra = 0


class QuestionInline(admin.TabularInline):
    model = Question
    extra = 0


@admin.register(Exam)
class ExamAdmin(admin.ModelAdmin):
    list_display = ("title", "subject", "date", "owner", "department", "pages_per_script", "anonymous")
    list_filter = ("department", "subject", "anonymous")
    search_fields = ("title", "subject", "owner__username")
    filter_horizontal = ("co_markers",)
    inlines = [QuestionInline]


@admin.register(Student)
class StudentAdmin(admin.ModelAdmin):
    list_display = ("student_id", "name", "class_name", "email", "exam")
    list_filter = ("exam", "class_name")
    search_fields = ("student_id", "name", "email")


@admin.register(Question)
class QuestionAdmin(admin.ModelAdmin):
    list_display = ("label", "exam", "answer", "max_score", "order")
    list_filter = ("exam",)


@admin.register(TemplatePage)
class TemplatePageAdmin(admin.ModelAdmin):
    list_display = ("exam", "index", "width", "height")


@admin.register(ScanUpload)
class ScanUploadAdmin(admin.ModelAdmin):
    list_display = ("original_name", "exam", "status", "pages_done", "pages_total", "created_at")
    list_filter = ("status", "exam")
    readonly_fields = ("sha256", "size", "created_at")


@admin.register(Script)
class ScriptAdmin(admin.ModelAdmin):
    list_display = ("number", "exam", "student")
    list_filter = ("exam",)


@admin.register(ScanPage)
class ScanPageAdmin(admin.ModelAdmin):
    list_display = ("__str__", "exam", "script", "position", "discarded", "flag")
    list_filter = ("exam", "discarded")

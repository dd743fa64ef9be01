from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.exam_list, name="exam_list"),
    path("exams/new/", views.exam_create, name="exam_create"),
    path("exams/<int:exam_id>/", views.exam_detail, name="exam_detail"),
    path("exams/<int:exam_id>/edit/", views.exam_edit, name="exam_edit"),
    path("exams/<int:exam_id>/roster/", views.roster, name="roster"),
    path("exams/<int:exam_id>/roster/import/", views.roster_import, name="roster_import"),
    path("exams/<int:exam_id>/roster/<int:student_pk>/", views.student_edit, name="student_edit"),
    path("exams/<int:exam_id>/answer-key/", views.answer_key, name="answer_key"),
    path("exams/<int:exam_id>/answer-key/import/", views.answer_key_import, name="answer_key_import"),
    path("exams/<int:exam_id>/answer-key/<int:question_pk>/", views.question_edit, name="question_edit"),
    path("templates/<slug:kind>.xlsx", views.spreadsheet_template, name="spreadsheet_template"),
    path("exams/<int:exam_id>/template/", views.template_upload, name="template_upload"),
    path("exams/<int:exam_id>/template/<int:index>.png", views.template_page_image, name="template_page_image"),
    path("exams/<int:exam_id>/scripts/<int:number>/comment/", views.script_comment, name="script_comment"),
    path("", include("grader.scans.urls")),
    path("", include("annotations.urls")),
    path("", include("grader.reading.urls")),
    path("", include("grader.grading.urls")),
    path("", include("grader.rubrics.urls")),
    path("", include("grader.outputs.urls")),
    path("", include("grader.learning.urls")),

    path("api/v1/", include("grader.api.urls")),
]

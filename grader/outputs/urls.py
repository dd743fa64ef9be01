from django.urls import path

from . import backup_views, email_views, views

urlpatterns = [
    path("exams/<int:exam_id>/outputs/", views.outputs, name="outputs"),
    path("exams/<int:exam_id>/outputs/new/", views.export_create, name="export_create"),
    path("exams/<int:exam_id>/outputs/<int:job_id>/", views.export_progress, name="export_progress"),
    path("exams/<int:exam_id>/outputs/<int:job_id>/download/", views.export_download, name="export_download"),
    path("exams/<int:exam_id>/outputs/<int:job_id>/again/", views.export_restart, name="export_restart"),
    path("exams/<int:exam_id>/outputs/<int:job_id>/cancel/", views.export_cancel, name="export_cancel"),
    path("exams/<int:exam_id>/outputs/email/", email_views.email_students, name="email_students"),
    path("exams/<int:exam_id>/outputs/email/preview/", email_views.email_preview, name="email_preview"),
    path("exams/<int:exam_id>/outputs/email/status/", email_views.email_status, name="email_status"),
    path("exams/<int:exam_id>/outputs/email/save/", email_views.email_save, name="email_save"),
    path("exams/<int:exam_id>/outputs/email/send/", email_views.email_send, name="email_send"),
    path("exams/<int:exam_id>/outputs/email/retry/", email_views.email_retry, name="email_retry"),
    path("exams/<int:exam_id>/outputs/email/<int:delivery_id>/retry/", email_views.email_unknown_retry,
         name="email_unknown_retry"),
    path("exams/<int:exam_id>/outputs/email/retry-unknown/", email_views.email_unknown_retry,
         name="email_unknown_retry_all"),
    path("exams/restore/", backup_views.exam_restore, name="exam_restore"),
]

from django.urls import path

from . import views

urlpatterns = [
    path("exams/<int:exam_id>/scans/", views.scans_upload, name="scans_upload"),
    path("exams/<int:exam_id>/uploads/<int:upload_id>/progress/", views.upload_progress, name="upload_progress"),
    path("exams/<int:exam_id>/uploads/<int:upload_id>/again/", views.upload_restart, name="upload_restart"),
    path("exams/<int:exam_id>/uploads/<int:upload_id>/cancel/", views.upload_cancel, name="upload_cancel"),
    path("exams/<int:exam_id>/pages/<int:page_id>.jpg", views.page_image, name="page_image"),
    path("exams/<int:exam_id>/pages/<int:page_id>/<slug:action>/", views.page_action, name="page_action"),
    path("exams/<int:exam_id>/scripts/new/", views.script_new, name="script_new"),
    path("exams/<int:exam_id>/scripts/<int:number>/", views.script_detail, name="script_detail"),
    path("exams/<int:exam_id>/scripts/<int:number>/delete/", views.script_delete, name="script_delete"),
]

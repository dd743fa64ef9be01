from django.urls import path

from . import views

urlpatterns = [
    path("exams/<int:exam_id>/outputs/", views.outputs, name="outputs"),
    path("exams/<int:exam_id>/outputs/new/", views.export_create, name="export_create"),
    path("exams/<int:exam_id>/outputs/<int:job_id>/", views.export_progress, name="export_progress"),
    path("exams/<int:exam_id>/outputs/<int:job_id>/download/", views.export_download, name="export_download"),
]

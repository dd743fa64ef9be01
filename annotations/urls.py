from django.urls import path

from . import views

urlpatterns = [
    path("exams/<int:exam_id>/boxes/", views.box_editor, name="box_editor"),
    path("exams/<int:exam_id>/boxes.json", views.box_list, name="box_list"),
    path("exams/<int:exam_id>/boxes/save/", views.box_save, name="box_save"),
    path("exams/<int:exam_id>/boxes/<int:box_id>/delete/", views.box_delete, name="box_delete"),
    path("exams/<int:exam_id>/boxes/import/", views.boxes_import, name="boxes_import"),
    path("exams/<int:exam_id>/boxes/export/<slug:fmt>.json", views.boxes_export, name="boxes_export"),
    path("exams/<int:exam_id>/boxes/suggest/", views.suggestions_start, name="suggestions_start"),
    path("exams/<int:exam_id>/boxes/suggestions/<int:suggestion_id>/", views.suggestion_decide, name="suggestion_decide"),
    path("exams/<int:exam_id>/scripts/<int:number>/boxes/", views.script_boxes, name="script_boxes"),
    path(
        "exams/<int:exam_id>/scripts/<int:number>/boxes/<int:box_id>/",
        views.script_box_adjust,
        name="script_box_adjust",
    ),
]

from django.urls import path

from . import views

urlpatterns = [
    path("exams/<int:exam_id>/rubrics.xlsx", views.rubric_sheet, name="rubric_sheet"),
    path("exams/<int:exam_id>/questions/<int:question_id>/rubric/", views.question_rubric, name="question_rubric"),
    path("exams/<int:exam_id>/comments/<int:comment_id>/", views.feedback_comment_edit, name="feedback_comment_edit"),
    path("exams/<int:exam_id>/comments/<int:comment_id>/delete/", views.feedback_comment_delete,
         name="feedback_comment_delete"),
    path("exams/<int:exam_id>/questions/<int:question_id>/rubric/suggest/", views.question_rubric_suggest,
         name="question_rubric_suggest"),
]

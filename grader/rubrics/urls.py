from django.urls import path

from grader.grading import views as grading_views

from . import views

urlpatterns = [
    path("exams/<int:exam_id>/rubrics.xlsx", views.rubric_sheet, name="rubric_sheet"),
    path("exams/<int:exam_id>/questions/<int:question_id>/rubric/", views.question_rubric, name="question_rubric"),
    path("exams/<int:exam_id>/comments/<int:comment_id>/", views.feedback_comment_edit, name="feedback_comment_edit"),
    path("exams/<int:exam_id>/comments/<int:comment_id>/delete/", views.feedback_comment_delete,
         name="feedback_comment_delete"),
    path("exams/<int:exam_id>/questions/<int:question_id>/rubric/suggest/", views.question_rubric_suggest,
         name="question_rubric_suggest"),
    # The view answers with the grading row, so it is grading's; what it reverts is a rubric change.
    path("exams/<int:exam_id>/grade/rubric-changes/<int:change_id>/revert/", grading_views.grading_rubric_revert,
         name="grading_rubric_revert"),
]

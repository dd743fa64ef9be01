from django.urls import path

from . import views

urlpatterns = [
    path("exams/<int:exam_id>/grade/", views.grading_index, name="grading_index"),
    path("exams/<int:exam_id>/grade/finish/", views.grading_finish, name="grading_finish"),
    path("exams/<int:exam_id>/grade/rollback/", views.grading_rollback, name="grading_rollback"),
    path("exams/<int:exam_id>/grade/reopen/", views.grading_reopen, name="grading_reopen"),
    path("exams/<int:exam_id>/grade/finish/waive/", views.grading_waive, name="grading_waive"),
    path("exams/<int:exam_id>/grade/<int:question_id>/", views.grading_question, name="grading_question"),
    path("exams/<int:exam_id>/grade/<int:question_id>/groups/", views.grading_group_score, name="grading_group_score"),
    path("exams/<int:exam_id>/grade/answers/<int:answer_id>/", views.grading_row, name="grading_row"),
    path("exams/<int:exam_id>/grade/answers/<int:answer_id>/score/", views.grading_score, name="grading_score"),
    path("exams/<int:exam_id>/grade/answers/<int:answer_id>/text/", views.grading_text, name="grading_text"),
    path("exams/<int:exam_id>/grade/answers/<int:answer_id>/rubric/", views.grading_rubric, name="grading_rubric"),
    path("exams/<int:exam_id>/grade/answers/<int:answer_id>/detach/", views.grading_detach, name="grading_detach"),
    path("exams/<int:exam_id>/grade/changes/<int:change_id>/revert/", views.grading_revert, name="grading_revert"),
    path("exams/<int:exam_id>/grade/rubric-changes/<int:change_id>/revert/", views.grading_rubric_revert,
         name="grading_rubric_revert"),
]

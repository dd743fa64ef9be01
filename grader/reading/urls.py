from django.urls import path

from . import views

urlpatterns = [
    path("exams/<int:exam_id>/reading/", views.reading_progress, name="reading_progress"),
    path("exams/<int:exam_id>/reading/read-all/", views.reading_read_all, name="reading_read_all"),
    path("exams/<int:exam_id>/reading/read-unread/", views.reading_read_unread, name="reading_read_unread"),
    path("exams/<int:exam_id>/reading/match/", views.reading_match, name="reading_match"),
    path("exams/<int:exam_id>/scripts/<int:number>/reading/", views.script_reading, name="script_reading"),
    path("exams/<int:exam_id>/scripts/<int:number>/read/", views.script_read_again, name="script_read_again"),
    path(
        "exams/<int:exam_id>/questions/<int:question_id>/settings/", views.question_settings, name="question_settings"
    ),
    path("exams/<int:exam_id>/questions/<int:question_id>/read/", views.question_read_again, name="question_read_again"),
    path("exams/<int:exam_id>/answers/<int:answer_id>/crop.jpg", views.answer_crop, name="answer_crop"),
    path(
        "exams/<int:exam_id>/scripts/<int:number>/identity/<str:label>.jpg", views.identity_crop, name="identity_crop"
    ),
    path("exams/<int:exam_id>/identity/", views.identity, name="identity"),
    path("exams/<int:exam_id>/scripts/<int:number>/identity/", views.identity_choose, name="identity_choose"),
]

from django.urls import path

from . import views

urlpatterns = [
    path("exams/<int:exam_id>/learning/", views.learning_start, name="learning_start"),
    path("exams/<int:exam_id>/learning/<int:job_id>/", views.learning_progress, name="learning_progress"),
    path("exams/<int:exam_id>/learning/<int:job_id>/<str:action>/", views.learning_job_action, name="learning_job_action"),
]

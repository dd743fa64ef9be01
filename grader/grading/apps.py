from django.apps import AppConfig


class GradingConfig(AppConfig):
    name = "grader.grading"
    label = "grading"
    verbose_name = "Grading: score history, answer groups and finishing an exam"

from django.apps import AppConfig


class RubricsConfig(AppConfig):
    name = "grader.rubrics"
    label = "rubrics"
    verbose_name = "Rubrics: dimension scores, written feedback and comment banks"

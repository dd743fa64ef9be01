from django.apps import AppConfig


class ReadingConfig(AppConfig):
    name = "grader.reading"
    label = "reading"
    verbose_name = "Reading and suggested scores"

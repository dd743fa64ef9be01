from django.apps import AppConfig


class LearningConfig(AppConfig):
    name = "grader.learning"
    label = "learning"
    verbose_name = "Learning from the teacher: training data and fine-tuned readers"

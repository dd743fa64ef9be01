from django.apps import AppConfig


class RecoveryConfig(AppConfig):
    name = "grader.recovery"
    label = "recovery"
    verbose_name = "Recovery: work that survives a killed worker, a dropped database connection or a lost broker"

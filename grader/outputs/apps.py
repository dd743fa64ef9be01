from django.apps import AppConfig


class OutputsConfig(AppConfig):
    name = "grader.outputs"
    label = "outputs"
    verbose_name = "Outputs: scored scripts, spreadsheets, sample reports, emails and backups"

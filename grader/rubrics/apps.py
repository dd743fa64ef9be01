from django.apps import AppConfig


class RubricsConfig(AppConfig):
    name = "grader.rubrics"
    label = "rubrics"
    verbose_name = "Rubrics: dimension scores, written feedback and comment banks"

    def ready(self) -> None:
        from grader.reading.signals import exam_answers_read

        from .suggest import exam_answers_read_receive

        exam_answers_read.connect(exam_answers_read_receive, dispatch_uid="rubric-suggestions-once-read")

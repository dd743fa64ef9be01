"""The broker options and the beat schedule that bound recovery come from the environment; every task
shares the base that acknowledges late and retries on a dropped database connection."""

from __future__ import annotations

import json

from grader import celery_app
from grader.recovery.jobs import DB_ERRORS, WorkTask
from tests.grader.test_settings import _settings_in_subprocess

_PRINT_BROKER = (
    "import json, grader.settings as s; "
    "print(json.dumps({'options': getattr(s, 'CELERY_BROKER_TRANSPORT_OPTIONS', None), "
    "'acks': [s.CELERY_TASK_ACKS_LATE, s.CELERY_TASK_REJECT_ON_WORKER_LOST, s.CELERY_WORKER_PREFETCH_MULTIPLIER], "
    "'stalled': s.WORK_STALLED_MINUTES, 'beat': s.CELERY_BEAT_SCHEDULE['work-recover']}))"
)


def _broker_settings(tmp_path, **environment) -> dict:
    result = _settings_in_subprocess(script=_PRINT_BROKER, DEBUG="on", MARKDESK_VAR_DIR=str(tmp_path),
                                     STATIC_ROOT=str(tmp_path / "static"), **environment)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_redis_hands_a_dead_workers_tasks_out_again_after_the_configured_visibility_timeout(tmp_path):
    loaded = _broker_settings(tmp_path, CELERY_BROKER_URL="redis://redis.internal:6379/0", CELERY_VISIBILITY_TIMEOUT="900",
                              WORK_STALLED_MINUTES="3", WORK_RECOVER_EVERY_S="30")

    options = loaded["options"]
    assert options["visibility_timeout"] == 900
    assert (options["unacked_restore_interval"], options["unacked_restore_throttle"]) == (10, 1)
    assert loaded["acks"] == [True, True, 1] and loaded["stalled"] == 3
    assert loaded["beat"] == {"task": "grader.recovery.tasks.work_recover_task", "schedule": 30.0,
                              "options": {"expires": 30.0}}


def test_the_default_visibility_timeout_is_half_an_hour_and_rabbitmq_confirms_what_it_is_sent(tmp_path):
    assert _broker_settings(tmp_path, CELERY_BROKER_URL="redis://redis:6379/0")["options"]["visibility_timeout"] == 1800
    assert _broker_settings(tmp_path, CELERY_BROKER_URL="amqp://rabbit:5672//")["options"] == {"confirm_publish": True}
    assert "data_folder_in" in _broker_settings(tmp_path)["options"]  # the embedded filesystem broker


def test_every_task_acknowledges_late_and_retries_on_a_dropped_database_connection():
    celery_app.loader.import_default_modules()
    ours = {name: task for name, task in celery_app.tasks.items() if name.startswith(("grader.", "annotations."))}

    assert "grader.recovery.tasks.work_recover_task" in ours and len(ours) >= 8
    for name, task in ours.items():
        assert isinstance(task, WorkTask), name
        assert task.acks_late and task.reject_on_worker_lost and set(DB_ERRORS) <= set(task.autoretry_for), name

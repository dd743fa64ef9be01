from django.apps import AppConfig


class ScansConfig(AppConfig):
    """Scan intake: uploads split into scripts, blank backs set aside, pages aligned and rearranged.

    Its models (``ScanUpload``, ``ScanPage``, ``Script``) stay in ``grader.models``, so existing
    databases and backups need no migration.
    """

    name = "grader.scans"
    label = "scans"
    verbose_name = "Scan intake"

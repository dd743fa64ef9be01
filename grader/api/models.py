"""Tokens that let other systems call the HTTP API (``/api/v1/``) on a user's behalf.

Only a SHA-256 hash of each token is stored; the plain token is shown once, when it is created
(``manage.py api_token`` or the admin). ``prefix`` is the token's first characters, kept in clear to
tell tokens apart in lists and to revoke one.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. the calling system's name.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False, help_text="SHA-256 of the token, hex")
    prefix = models.CharField(max_length=16, unique=True, editable=False, help_text="The token's first characters")
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)
    revoked = models.BooleanField(default=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

"""How logins are throttled: the hooks django-axes calls (see ``AXES_*`` in settings)."""

from __future__ import annotations

import ipaddress
import math

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def client_address(request: HttpRequest) -> str | None:
    """The address a login comes from: ``REMOTE_ADDR``, or behind ``TRUSTED_PROXIES`` reverse proxies the
    address the outermost of them saw, counted from the right of X-Forwarded-For (entries further left
    come from the client and may be forged). ``None`` when what it finds is not an IP address."""
    remote = request.META.get("REMOTE_ADDR")
    if settings.TRUSTED_PROXIES:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if len(forwarded) >= settings.TRUSTED_PROXIES:
            remote = forwarded[-settings.TRUSTED_PROXIES]
    try:
        return str(ipaddress.ip_address(remote or ""))
    except ValueError:
        return None


def login_locked_out(request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None) -> HttpResponse:
    """The page a login gets while its username or address is locked out: why, for how long, status 429."""
    minutes = math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    context = {"failure_limit": settings.AXES_FAILURE_LIMIT, "minutes": minutes}
    return render(request, "registration/locked_out.html", context, status=429)

"""Logins are throttled per account and per address, and passwords anyone would guess are refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client, RequestFactory
from django.urls import reverse

from grader.logins import client_address

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-password"


@pytest.fixture
def hannah(teacher):
    teacher.set_password(PASSWORD)
    teacher.save()
    return teacher


def _log_in(username: str, password: str, *, address: str = "127.0.0.1", client: Client | None = None):
    client = client or Client()
    response = client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)
    return response, client


def _logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_the_right_password_logs_in_after_a_few_wrong_ones(hannah):
    for _ in range(3):
        response, _ = _log_in("teacher", "wrong")
        assert response.status_code == 200 and "did not match" in response.content.decode()

    response, client = _log_in("teacher", PASSWORD)

    assert response.status_code == 302 and _logged_in(client)


def test_after_too_many_wrong_passwords_even_the_right_one_is_refused_until_the_pause_ends(hannah, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _log_in("teacher", "wrong")

    response, client = _log_in("teacher", PASSWORD)

    assert response.status_code == 429 and not _logged_in(client)
    text = response.content.decode()
    assert "Too many failed logins" in text
    assert "After 10 failed logins for this account or from this network, logging in is paused for 15 minutes" in text

    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16))
    response, client = _log_in("teacher", PASSWORD)
    assert response.status_code == 302 and _logged_in(client)


def test_wrong_passwords_for_one_account_lock_it_from_every_address(hannah, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        _log_in("teacher", "wrong", address=f"198.51.100.{n}")

    response, client = _log_in("teacher", PASSWORD, address="203.0.113.9")

    assert response.status_code == 429 and not _logged_in(client)


def test_wrong_passwords_from_one_address_lock_it_for_every_account(hannah, other_teacher, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        _log_in(f"guess{n}", "wrong", address="198.51.100.7")

    response, client = _log_in("teacher", PASSWORD, address="198.51.100.7")
    assert response.status_code == 429 and not _logged_in(client)

    response, client = _log_in("teacher", PASSWORD, address="203.0.113.9")
    assert response.status_code == 302 and _logged_in(client)


def test_logging_in_to_ones_own_account_does_not_clear_the_count_against_another(hannah, other_teacher, settings):
    other_teacher.set_password("another-long-password")
    other_teacher.save()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _log_in("teacher", "wrong", address="198.51.100.7")
    assert _log_in("other", "another-long-password", address="198.51.100.7")[0].status_code == 302

    _log_in("teacher", "wrong", address="203.0.113.9")

    assert _log_in("teacher", PASSWORD, address="203.0.113.9")[0].status_code == 429


@pytest.mark.parametrize(
    ("proxies", "forwarded", "remote", "address"),
    [
        (0, "203.0.113.9", "10.0.0.2", "10.0.0.2"),
        (1, "192.0.2.1, 203.0.113.9", "10.0.0.2", "203.0.113.9"),
        (2, "192.0.2.1, 203.0.113.9, 10.0.0.3", "10.0.0.2", "203.0.113.9"),
        (1, "", "10.0.0.2", None),
        (1, "not an address", "10.0.0.2", None),
    ],
)
def test_the_client_address_trusts_only_the_proxies_it_is_told_of(settings, proxies, forwarded, remote, address):
    settings.TRUSTED_PROXIES = proxies
    request = RequestFactory().post("/accounts/login/", HTTP_X_FORWARDED_FOR=forwarded, REMOTE_ADDR=remote)

    assert client_address(request) == address


@pytest.mark.parametrize("password", ["password123", "qwertyuiop", "20250314123"])
def test_common_and_all_digit_passwords_are_refused(teacher, password):
    with pytest.raises(ValidationError):
        validate_password(password, teacher)


def test_a_long_uncommon_password_is_accepted(teacher):
    validate_password("staple-lantern-orbit-42", teacher)

"""``python manage.py api_token USERNAME --name NAME``: create an API token and print it (once).

``--revoke PREFIX`` revokes the token whose shown prefix (``mdk_`` and 8 characters) starts with
PREFIX (limited to USERNAME's tokens when one is given); ``--list`` lists USERNAME's tokens (all
tokens without USERNAME). Only a hash of each token is stored: a lost token cannot be shown again,
only revoked and replaced.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from grader.api import services
from grader.api.models import ApiToken
from grader.models import User


class Command(BaseCommand):
    help = "Create (--name), revoke (--revoke PREFIX) or list (--list) API tokens."

    def add_arguments(self, parser):
        parser.add_argument("username", nargs="?", help="The user the token acts for.")
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--name", help="Create a token with this name (what it is for); prints the token.")
        action.add_argument("--revoke", metavar="PREFIX", help="Revoke the token starting with PREFIX.")
        action.add_argument("--list", dest="list_tokens", action="store_true", help="List tokens (prefix, name, user, dates).")

    def handle(self, *args, username: str | None, name: str | None, revoke: str | None, list_tokens: bool, **options):
        user = self._user(username) if username else None
        if name is not None:
            if user is None:
                raise CommandError("Give the USERNAME the token acts for: api_token USERNAME --name NAME.")
            try:
                record, token = services.api_token_create(user=user, name=name)
            except services.ApiTokenError as error:
                raise CommandError(str(error)) from error
            self.stderr.write(
                f"Token {record.prefix}… ({record.name}) for {user.username}. "
                "It is shown once, below: store it now."
            )
            self.stdout.write(token)
            return
        if revoke is not None:
            try:
                record = services.api_token_revoke(prefix=revoke, user=user)
            except services.ApiTokenError as error:
                raise CommandError(str(error)) from error
            self.stdout.write(f"Revoked {record.prefix}… ({record.name}) of {record.user.username}.")
            return
        tokens = ApiToken.objects.select_related("user")
        if user is not None:
            tokens = tokens.filter(user=user)
        for record in tokens:
            used = f"{record.last_used:%Y-%m-%d %H:%M}" if record.last_used else "never"
            state = "revoked" if record.revoked else "active"
            self.stdout.write(
                f"{record.prefix}  {state:<7}  {record.user.username:<20}  created {record.created:%Y-%m-%d}  "
                f"last used {used}  {record.name}"
            )

    @staticmethod
    def _user(username: str) -> User:
        try:
            return User.objects.get(username=username)
        except User.DoesNotExist as error:
            raise CommandError(f"There is no user {username!r}.") from error

"""API tokens in the admin: list, create (the plain token is shown once, in a message) and revoke."""

from __future__ import annotations

from django.contrib import admin, messages

from . import services
from .models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created", "last_used", "revoked")
    list_filter = ("revoked",)
    search_fields = ("name", "prefix", "user__username")
    readonly_fields = ("prefix", "created", "last_used", "revoked", "revoked_at")
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        return ("user", "name") if obj is None else ("user", "name", *self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("user", *self.readonly_fields)

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        record, token = services.api_token_create(user=obj.user, name=obj.name)
        obj.pk = record.pk
        obj.__dict__.update({field.attname: getattr(record, field.attname) for field in ApiToken._meta.concrete_fields})
        messages.warning(request, f"The new token is {token} — copy it now: it is not shown again.")

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        count = services.api_tokens_revoke(tokens=queryset)
        messages.success(request, f"Revoked {count} token(s).")

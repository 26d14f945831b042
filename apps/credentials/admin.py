"""Broker credentials in the admin: write-only secrets, masked in every list and page.

The secret inputs are password fields that never render the stored value; leaving one
empty when editing keeps what is stored. Saving goes through the service (validated,
audited as user:<name>).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from apps.credentials.exceptions import CredentialInvalid
from apps.credentials.models import BrokerCredential
from apps.credentials.selectors import broker_credential_masked, broker_credentials_for
from apps.credentials.services import (
    broker_credential_delete,
    broker_credential_set,
    credential_value_clean,
)

_SECRET = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})


class BrokerCredentialForm(forms.ModelForm):
    api_key = forms.CharField(required=False, widget=_SECRET, strip=True)
    api_secret = forms.CharField(required=False, widget=_SECRET, strip=True)
    extra_secret = forms.CharField(
        required=False,
        widget=_SECRET,
        strip=True,
        help_text="optional; empty keeps the stored value",
    )
    clear_extra_secret = forms.BooleanField(required=False, label="Clear the extra secret")

    class Meta:
        model = BrokerCredential
        fields = ("account",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A bound form must never echo the stored secrets back into the page.
        for name in ("api_key", "api_secret", "extra_secret"):
            self.initial.pop(name, None)
        if self.instance.pk:
            self.fields["account"].disabled = True
            for name in ("api_key", "api_secret"):
                self.fields[name].help_text = "empty keeps the stored value"

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for name in ("api_key", "api_secret", "extra_secret"):
            required = name != "extra_secret" and not self.instance.pk
            try:
                data[name] = credential_value_clean(name, data.get(name), required=required)
            except CredentialInvalid as exc:
                self.add_error(name, exc.message)
        return data


@admin.register(BrokerCredential)
class BrokerCredentialAdmin(admin.ModelAdmin):
    form = BrokerCredentialForm
    list_display = ("account", "masked_api_key", "secret_stored", "updated_at", "updated_by")
    readonly_fields = ("masked_api_key", "updated_at", "updated_by")
    fields = (
        "account",
        "masked_api_key",
        "api_key",
        "api_secret",
        "extra_secret",
        "clear_extra_secret",
        "updated_at",
        "updated_by",
    )

    @admin.display(description="API key")
    def masked_api_key(self, obj: BrokerCredential) -> str:
        return broker_credential_masked(obj.api_key or "") if obj.pk else "-"

    @admin.display(description="secret", boolean=True)
    def secret_stored(self, obj: BrokerCredential) -> bool:
        return bool(obj.api_secret)

    def save_model(
        self, request: HttpRequest, obj: BrokerCredential, form: Any, change: bool
    ) -> None:
        data = form.cleaned_data
        stored = broker_credentials_for(account_id=obj.account_id) if change else None
        extra: str | None = data.get("extra_secret") or None
        if data.get("clear_extra_secret"):
            extra = ""
        saved = broker_credential_set(
            account_id=obj.account_id,
            api_key=data.get("api_key") or (stored.api_key if stored else ""),
            api_secret=data.get("api_secret") or (stored.api_secret if stored else ""),
            extra_secret=extra,
            actor=f"user:{request.user.get_username()}",
        )
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: BrokerCredential) -> None:
        broker_credential_delete(
            account_id=obj.account_id, actor=f"user:{request.user.get_username()}"
        )

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for account_id in queryset.values_list("account_id", flat=True):
            broker_credential_delete(
                account_id=account_id, actor=f"user:{request.user.get_username()}"
            )

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> Any:
        return queryset, False  # nothing searchable: the columns are ciphertext

"""Storing broker credentials: validated, encrypted by the model fields, audited without values."""

from __future__ import annotations

from django.db import transaction

from apps.accounts.models import Account
from apps.audit.services import audit_record
from apps.credentials.exceptions import CredentialInvalid
from apps.credentials.models import BrokerCredential

LIMITS = {"api_key": 512, "api_secret": 4096, "extra_secret": 4096}


def credential_value_clean(name: str, value: str | None, *, required: bool) -> str:
    text = (value or "").strip()
    if not text:
        if required:
            raise CredentialInvalid(f"{name} is required", field=name)
        return ""
    if any(ch.isspace() for ch in text):
        raise CredentialInvalid(
            f"{name} contains whitespace: paste the value exactly as the broker shows it",
            field=name,
        )
    if len(text) > LIMITS[name]:
        raise CredentialInvalid(f"{name} is longer than {LIMITS[name]} characters", field=name)
    return text


@transaction.atomic
def broker_credential_set(
    *,
    account_id: int,
    api_key: str,
    api_secret: str,
    extra_secret: str | None = None,
    actor: str,
) -> BrokerCredential:
    """Create or replace an account's broker keys (stored as Fernet tokens).

    ``extra_secret=None`` keeps the stored one; ``""`` clears it. The audit row names
    the account and which fields changed, never a value.
    """
    key = credential_value_clean("api_key", api_key, required=True)
    secret = credential_value_clean("api_secret", api_secret, required=True)
    extra = (
        None
        if extra_secret is None
        else credential_value_clean("extra_secret", extra_secret, required=False)
    )
    if not Account.objects.filter(pk=account_id).exists():
        raise CredentialInvalid(f"account {account_id} does not exist", field="account_id")
    row = BrokerCredential.objects.select_for_update().filter(account_id=account_id).first()
    created = row is None
    if row is None:
        row = BrokerCredential(account_id=account_id)
    row.api_key = key
    row.api_secret = secret
    if extra is not None:
        row.extra_secret = extra or None
    row.updated_by = actor
    row.save()
    audit_record(
        actor=actor,
        action="broker_credential.create" if created else "broker_credential.replace",
        target=f"account:{account_id}",
        data={"fields": ["api_key", "api_secret"] + ([] if extra is None else ["extra_secret"])},
    )
    return row


@transaction.atomic
def broker_credential_delete(*, account_id: int, actor: str) -> bool:
    deleted, _ = BrokerCredential.objects.filter(account_id=account_id).delete()
    if deleted:
        audit_record(actor=actor, action="broker_credential.delete", target=f"account:{account_id}")
    return bool(deleted)

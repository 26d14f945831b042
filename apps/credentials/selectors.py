"""Reading broker credentials for the venue factory: plain strings, or a clear failure."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import TextField
from django.db.models.functions import Cast

from apps.credentials.crypto import decrypt
from apps.credentials.models import BrokerCredential

SECRET_FIELDS = ("api_key", "api_secret", "extra_secret")


@dataclass(frozen=True)
class BrokerCredentials:
    """One account's broker keys in clear. ``repr`` never shows them (logs, tracebacks)."""

    account_id: int
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    extra_secret: str = field(default="", repr=False)


def broker_credentials_for(*, account_id: int) -> BrokerCredentials | None:
    """The account's broker keys, or None when none are stored.

    The ciphertext is read as stored (a Cast bypasses the field's own decryption, which
    would silently hand back the ciphertext when the keys are wrong) and decrypted here
    with the keys derived from the current SECRET_KEY / SALT_KEY.

    Raises
    ------
    CredentialUndecryptable
        The stored values do not open with the current keys (the message says what to do).
    """
    row = (
        BrokerCredential.objects.filter(account_id=account_id)
        .annotate(**{f"raw_{name}": Cast(name, TextField()) for name in SECRET_FIELDS})
        .values(*(f"raw_{name}" for name in SECRET_FIELDS))
        .first()
    )
    if row is None:
        return None
    plain = {
        name: decrypt(row[f"raw_{name}"], what=f"{name} of account {account_id}")
        if row[f"raw_{name}"]
        else ""
        for name in SECRET_FIELDS
    }
    return BrokerCredentials(account_id=account_id, **plain)


def broker_credential_masked(value: str) -> str:
    """What a person may see of a key: its length and last 4 characters at most."""
    if not value:
        return "-"
    if len(value) < 12:
        return "•" * 8
    return f"{'•' * 8}{value[-4:]}"

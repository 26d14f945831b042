"""Broker API keys, encrypted at rest (spec 9.2: "API keys brokers: .env + encriptado en reposo").

The three secret columns are Fernet tokens (django-fernet-encrypted-fields): the key is
derived with PBKDF2-HMAC-SHA256 (100,000 iterations) from SECRET_KEY and SALT_KEY, with
SECRET_KEY_FALLBACKS accepted for reading while a SECRET_KEY is rotated. A database dump
or backup therefore holds no usable broker key without the env file.
"""

from __future__ import annotations

from django.db import models
from encrypted_fields.fields import EncryptedCharField


class BrokerCredential(models.Model):
    account = models.OneToOneField(
        "accounts.Account", on_delete=models.CASCADE, related_name="broker_credential"
    )
    api_key = EncryptedCharField(max_length=512)
    api_secret = EncryptedCharField(max_length=4096)
    # Empty values are stored as NULL by the field (it never encrypts "").
    extra_secret = EncryptedCharField(
        max_length=4096,
        null=True,
        blank=True,
        help_text="a second secret where the broker has one (passphrase, OTP seed)",
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=128, default="")

    class Meta:
        verbose_name = "broker credential"

    def __str__(self) -> str:
        return f"credentials of account {self.account_id}"

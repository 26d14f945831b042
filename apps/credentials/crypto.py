"""The Fernet keys of the encrypted fields, derived from the settings of the moment.

django-fernet-encrypted-fields (0.4.0) derives one key per (SECRET_KEY or one of
SECRET_KEY_FALLBACKS, SALT_KEY) pair with PBKDF2-HMAC-SHA256, 32 bytes, 100,000
iterations, salt = SALT_KEY, and caches them on each field for the life of the process.
The same derivation is done here (tests/credentials checks it gives the library's keys),
so that reading detects a wrong key and says so, where the field would silently return
the ciphertext.
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.credentials.exceptions import CredentialUndecryptable

ITERATIONS = 100_000


def derive_keys(secret_keys: tuple[str, ...], salt_keys: tuple[str, ...]) -> list[bytes]:
    """The library's keys, in its order (each secret key, then each salt)."""
    keys = []
    for secret_key in secret_keys:
        for salt_key in salt_keys:
            kdf = PBKDF2HMAC(
                algorithm=hashes.SHA256(),
                length=32,
                salt=salt_key.encode("utf-8"),
                iterations=ITERATIONS,
            )
            keys.append(base64.urlsafe_b64encode(kdf.derive(secret_key.encode("utf-8"))))
    return keys


@functools.lru_cache(maxsize=8)
def _fernet(secret_keys: tuple[str, ...], salt_keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k) for k in derive_keys(secret_keys, salt_keys)])


def current_fernet() -> MultiFernet:
    salt = getattr(settings, "SALT_KEY", "")
    salts = tuple(salt) if isinstance(salt, list | tuple) else (salt,)
    if not settings.SECRET_KEY or not all(salts):
        raise ImproperlyConfigured(
            "SECRET_KEY and SALT_KEY must both be set to read broker credentials"
        )
    secret_keys = (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", []))
    return _fernet(tuple(secret_keys), salts)


def decrypt(token: str, *, what: str) -> str:
    try:
        return current_fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise CredentialUndecryptable(
            f"the stored {what} cannot be decrypted with the keys derived from the current "
            "DJANGO_SECRET_KEY and SALT_KEY: one of them changed (keep the old secret key in "
            "DJANGO_SECRET_KEY_FALLBACKS while rotating; SALT_KEY must never change) or the "
            "row comes from another installation; re-enter the credentials in the admin"
        ) from None

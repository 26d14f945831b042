"""Credential errors: a refused input, or stored secrets the current keys cannot open."""

from __future__ import annotations

from apps.core.exceptions import ApplicationError


class CredentialInvalid(ApplicationError):
    """A credential value was refused (empty, whitespace inside, unknown account)."""

    code = "credential_invalid"


class CredentialUndecryptable(ApplicationError):
    """The stored ciphertext does not open with the keys derived from SECRET_KEY/SALT_KEY.

    Needs a human: the keys changed without SECRET_KEY_FALLBACKS, or the row was copied
    from another installation. Never fall back to the ciphertext.
    """

    code = "credential_undecryptable"
    http_status = 500

"""Staff logins' second factors are issued, never self-enrolled.

A staff account gets its authenticator (TOTP, issuer "Tradebot") and ten single-use backup
codes when it is created (``manage.py staff_create``), or a replacement when a phone is lost
(``manage.py staff_totp_reset``): both print the otpauth URI (and its QR code) and the
backup codes once, and audit the enrolment (never the secret). The panel closes the
two-factor setup wizard to password-only sessions (``apps.panel.enrolment``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.audit.services import audit_record

BACKUP_CODES = 10
BACKUP_DEVICE = "backup"  # the name django-two-factor-auth's login step looks for


@dataclass(frozen=True)
class Enrolment:
    username: str
    otpauth_uri: str
    backup_codes: list[str]
    password: str | None = None  # only for a new account


def staff_totp_enrol(*, user: Any, actor: str) -> Enrolment:
    """A new authenticator and backup codes for ``user``; the old ones stop working."""
    with transaction.atomic():
        replaced = TOTPDevice.objects.filter(user=user).count()
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
        device = TOTPDevice.objects.create(user=user, name="default", confirmed=True)
        backup = StaticDevice.objects.create(user=user, name=BACKUP_DEVICE, confirmed=True)
        codes = [StaticToken.random_token() for _ in range(BACKUP_CODES)]
        StaticToken.objects.bulk_create(StaticToken(device=backup, token=c) for c in codes)
        audit_record(
            actor=actor,
            action="auth.totp_enrolled",
            target=user.get_username(),
            data={"replaced_devices": replaced, "backup_codes": len(codes)},
        )
    return Enrolment(user.get_username(), device.config_url, codes)


def staff_create(*, username: str, email: str = "", superuser: bool, actor: str) -> Enrolment:
    """A staff account with a random password, its authenticator and backup codes."""
    user_model = get_user_model()
    username = username.strip()
    field = user_model._meta.get_field(user_model.USERNAME_FIELD)
    try:
        for validator in getattr(field, "validators", []):
            validator(username)
        if not username:
            raise ValidationError("a username is required")
    except ValidationError as exc:
        raise ValidationError({"username": exc.messages}) from None
    if user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).exists():
        raise ValidationError(
            {"username": f"{username!r} exists: use manage.py staff_totp_reset {username}"}
        )
    password = secrets.token_urlsafe(18)
    with transaction.atomic():
        create = (
            user_model._default_manager.create_superuser
            if superuser
            else user_model._default_manager.create_user
        )
        user = create(username=username, email=email, password=password, is_staff=True)
        audit_record(
            actor=actor,
            action="auth.staff_created",
            target=username,
            data={"superuser": superuser},
        )
        enrolment = staff_totp_enrol(user=user, actor=actor)
    return Enrolment(username, enrolment.otpauth_uri, enrolment.backup_codes, password)

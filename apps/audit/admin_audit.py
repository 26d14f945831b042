"""Admin edits leave an audit row with what changed, before and after (issue 13, item 5).

``AuditedAdminMixin`` on a ``ModelAdmin``: adding, changing (only the fields that changed)
and deleting a row, one at a time or from the list's bulk delete, are each an
``AuditEvent`` (``admin.add`` / ``admin.change`` / ``admin.delete``, actor ``user:<name>``,
target ``<app>.<model>:<pk>``) written in the same transaction as the edit. Fields named in
``audit_exclude`` (secrets) are recorded as changed but never with their values.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import models, transaction
from django.http import HttpRequest

from apps.audit.services import audit_record


def _text(value: object) -> str | None:
    """A field's value as compared and recorded (10000.000 and 10000 are the same money)."""
    if value is None:
        return None
    if isinstance(value, Decimal) and value.is_finite():
        return format(value.normalize(), "f")
    return str(value)


def _values(obj: models.Model, exclude: frozenset[str]) -> dict[str, str | None]:
    return {
        field.name: "***" if field.name in exclude else _text(getattr(obj, field.attname))
        for field in obj._meta.concrete_fields
    }


def _target(obj: models.Model) -> str:
    return f"{obj._meta.app_label}.{obj._meta.model_name}:{obj.pk}"


class AuditedAdminMixin:
    audit_exclude: frozenset[str] = frozenset()

    def _actor(self, request: HttpRequest) -> str:
        return f"user:{request.user.get_username()}"

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        before = None
        if change and obj.pk is not None:
            old = type(obj)._default_manager.filter(pk=obj.pk).first()
            before = _values(old, self.audit_exclude) if old is not None else None
        with transaction.atomic():
            super().save_model(request, obj, form, change)  # type: ignore[misc]
            after = _values(obj, self.audit_exclude)
            if before is None:
                audit_record(
                    actor=self._actor(request),
                    action="admin.add",
                    target=_target(obj),
                    data={"after": after},
                )
                return
            changed = sorted(k for k in after if after[k] != before.get(k))
            if changed:
                audit_record(
                    actor=self._actor(request),
                    action="admin.change",
                    target=_target(obj),
                    data={
                        "fields": changed,
                        "before": {k: before.get(k) for k in changed},
                        "after": {k: after[k] for k in changed},
                    },
                )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            audit_record(
                actor=self._actor(request),
                action="admin.delete",
                target=_target(obj),
                data={"before": _values(obj, self.audit_exclude)},
            )
            super().delete_model(request, obj)  # type: ignore[misc]

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        with transaction.atomic():
            for obj in queryset:
                audit_record(
                    actor=self._actor(request),
                    action="admin.delete",
                    target=_target(obj),
                    data={"before": _values(obj, self.audit_exclude)},
                )
            super().delete_queryset(request, queryset)  # type: ignore[misc]

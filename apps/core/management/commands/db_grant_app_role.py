"""manage.py db_grant_app_role: (re)apply the application role's database grants."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from apps.core.apps import grant_app_role
from apps.core.db_roles import RoleError


class Command(BaseCommand):
    help = (
        "Create the application role of DATABASE_URL if missing and (re)apply its grants: "
        "DML on the tables, only INSERT and SELECT on the decision log and audit trail, no "
        "DDL. Connects as the owner (DATABASE_OWNER_URL). migrate does this after every run."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DATABASE_AS_OWNER:
            raise CommandError(
                "DATABASE_OWNER_URL is not set: set it to the URL of the role that owns the "
                "tables (the one migrate runs as) and run this again"
            )
        try:
            ran = grant_app_role()
        except RoleError as exc:
            raise CommandError(str(exc)) from None
        except DatabaseError as exc:
            raise CommandError(
                f"granting failed: {str(exc).strip()}: DATABASE_OWNER_URL must be the owner of "
                "the tables (with CREATEROLE to create the application role)"
            ) from None
        for statement in ran:
            self.stdout.write(statement)
        self.stdout.write(self.style.SUCCESS(f"{len(ran)} statements applied"))

"""Shared fixtures: the real PostgreSQL and Redis of scripts/services.py (never SQLite, never in-memory)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("ENVIRONMENT", "test")


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user(
        username="ops", password="pw-for-tests-only", is_staff=True
    )

"""Liveness of the web process and its two dependencies (the full runbook check comes later)."""

from __future__ import annotations

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views import View


class HealthView(View):
    def get(self, request: HttpRequest) -> JsonResponse:
        checks: dict[str, str] = {}
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - report, don't crash the probe
            checks["database"] = f"error: {exc.__class__.__name__}"
        try:
            cache.set("health", "1", 5)
            checks["redis"] = "ok" if cache.get("health") == "1" else "error: no round trip"
        except Exception as exc:  # noqa: BLE001
            checks["redis"] = f"error: {exc.__class__.__name__}"
        healthy = all(v == "ok" for v in checks.values())
        return JsonResponse(
            {"status": "ok" if healthy else "error", "checks": checks},
            status=200 if healthy else 503,
        )

"""Liveness of the web process and its two dependencies (the full runbook check is
/health/ready, apps/ops), and /metrics behind its bearer token."""

from __future__ import annotations

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import View
from django_prometheus.exports import ExportToDjangoView

from apps.core.access import bearer_token_ok


class HealthView(View):
    """GET /health: unauthenticated liveness (compose and nginx probes): "ok" or "error" for
    the database and Redis, nothing else."""

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


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics (equity, P&L, exposures): only with ``Authorization: Bearer <token>``
    (METRICS_BEARER_TOKEN; Prometheus sends it from its credentials_file)."""
    if not bearer_token_ok(request):
        return HttpResponse(
            "401 Unauthorized: /metrics needs 'Authorization: Bearer <METRICS_BEARER_TOKEN>'\n",
            status=401,
            content_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    return ExportToDjangoView(request)

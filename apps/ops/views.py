"""Operations pages: readiness (runbook 6.1 checks), daily checklists, stress reports;
/health/ready JSON."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View

from apps.core.access import (
    VerifiedStaffRequiredMixin,
    bearer_token_configured,
    bearer_token_ok,
    is_verified_staff,
)
from apps.ops import health
from apps.ops.exceptions import OpsError
from apps.ops.models import ChecklistRun, StressReport


class HealthDetailView(View):
    """GET /health/ready: the startup runbook's checks as JSON; 503 when any fails.

    Anyone gets the overall status and its HTTP code (probes); the checks with their
    details (database, broker state, mode, workers) only with the metrics bearer token
    (METRICS_BEARER_TOKEN) or to a verified staff user.
    """

    def get(self, request: HttpRequest) -> JsonResponse:
        checks = health.health_checks()
        status = health.overall(checks)
        body: dict[str, object] = {"status": status}
        token_given = bearer_token_configured() and bearer_token_ok(request)
        if token_given or is_verified_staff(request.user):
            body["checks"] = {c.name: {"status": c.status, "detail": c.detail} for c in checks}
        return JsonResponse(body, status=503 if status == health.FAIL else 200)


class ReadinessView(VerifiedStaffRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        checks = health.health_checks()
        return render(
            request,
            "ops/readiness.html",
            {"checks": checks, "status": health.overall(checks)},
        )


class ChecklistView(VerifiedStaffRequiredMixin, View):
    """The latest checklists, or one of them (pk)."""

    def get(self, request: HttpRequest, pk: int | None = None) -> HttpResponse:
        recent = list(ChecklistRun.objects.order_by("-created_at")[:30])
        run = get_object_or_404(ChecklistRun, pk=pk) if pk else (recent[0] if recent else None)
        return render(request, "ops/checklist.html", {"run": run, "recent": recent})


class StressReportView(VerifiedStaffRequiredMixin, View):
    """The latest stress reports, or one of them (pk); read-only (manage.py stress_test runs one)."""

    def get(self, request: HttpRequest, pk: int | None = None) -> HttpResponse:
        from apps.ops.services.maintenance import maintenance_last_success

        recent = list(StressReport.objects.order_by("-created_at", "-id")[:20])
        report = get_object_or_404(StressReport, pk=pk) if pk else (recent[0] if recent else None)
        return render(
            request,
            "ops/stress.html",
            {
                "report": report,
                "recent": recent,
                "last_success": maintenance_last_success(task="stress_test"),
            },
        )


class ChecklistItemTickView(VerifiedStaffRequiredMixin, View):
    """POST (CSRF): tick a manual item of a checklist; audited as user:<name>."""

    def post(self, request: HttpRequest, pk: int, key: str) -> HttpResponse:
        from apps.ops.services.checklists import checklist_item_tick

        get_object_or_404(ChecklistRun, pk=pk)
        try:
            checklist_item_tick(
                run_id=pk,
                key=key,
                actor=f"user:{request.user.get_username()}",
                note=request.POST.get("note", "")[:500],
            )
        except OpsError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Ticked.")
        return redirect("ops:checklist", pk=pk)

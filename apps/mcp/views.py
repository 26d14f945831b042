"""The agents page: every MCP agent, what it may do, what it did lately, and a revoke button."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.db.models import Count, Max, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views import View
from django.views.generic import TemplateView

from apps.audit.models import AuditEvent
from apps.core.access import VerifiedStaffRequiredMixin
from apps.mcp.models import McpAgent
from apps.mcp.services import McpInputError, mcp_agent_revoke

RECENT = timedelta(hours=24)
LAST_CALLS = 20
REFUSED = ("denied", "refused", "error")  # the verdicts that are not a success


def agents_activity() -> list[dict[str, Any]]:
    """Each agent with its calls in the last 24 h (all; denied, refused or in error) and its
    last call."""
    since = timezone.now() - RECENT
    counts: dict[str, dict[str, Any]] = {
        row["actor"]: dict(row)
        for row in AuditEvent.objects.filter(action="mcp.tool_call", created_at__gte=since)
        .values("actor")
        .annotate(
            calls=Count("id"),
            refused=Count("id", filter=Q(data__verdict__in=REFUSED)),
            last=Max("created_at"),
        )
    }
    out = []
    for agent in McpAgent.objects.select_related("account").order_by("revoked_at", "name"):
        row = counts.get(f"mcp:{agent.name}", {})
        out.append(
            {
                "agent": agent,
                "calls": row.get("calls", 0),
                "refused": row.get("refused", 0),
                "last": agent.last_used_at,
            }
        )
    return out


class AgentsView(VerifiedStaffRequiredMixin, TemplateView):
    template_name = "mcp/agents.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["agents"] = agents_activity()
        context["calls"] = list(
            AuditEvent.objects.filter(action="mcp.tool_call").order_by("-id")[:LAST_CALLS]
        )
        return context


class AgentRevokeView(VerifiedStaffRequiredMixin, View):
    """POST only, CSRF: the agent's token stops working at once (audited)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, agent_id: int) -> HttpResponse:
        agent = McpAgent.objects.filter(pk=agent_id).first()
        if agent is None:
            raise Http404(f"no MCP agent with id {agent_id}")
        try:
            mcp_agent_revoke(name=agent.name, actor=f"user:{request.user.get_username()}")
        except McpInputError as exc:  # pragma: no cover - the row was just read
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Agent {agent.name} revoked: its token no longer works.")
        return redirect(reverse("mcp:agents"))

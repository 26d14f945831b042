from django.contrib.auth.views import LogoutView
from django.urls import path

from apps.panel import api, controls, plans, views
from apps.panel.security_log import SecurityLogView

app_name = "panel"

urlpatterns = [
    path("", views.OverviewView.as_view(), name="overview"),
    path("risk/", views.RiskView.as_view(), name="risk"),
    path("incidents/", views.IncidentListView.as_view(), name="incidents"),
    path("incidents/<int:incident_id>/", views.IncidentDetailView.as_view(), name="incident"),
    # Controls: POST only, CSRF, a reason each.
    path("controls/mode/", controls.ModeSetView.as_view(), name="mode_set"),
    path("controls/kill/", controls.KillSwitchView.as_view(), name="kill_switch"),
    path("controls/limits/", controls.RiskLimitSetView.as_view(), name="limits_set"),
    path(
        "incidents/<int:incident_id>/report/",
        controls.IncidentUpdateView.as_view(),
        name="incident_update",
    ),
    path(
        "incidents/<int:incident_id>/close/",
        controls.IncidentCloseView.as_view(),
        name="incident_close",
    ),
    # Trading plans: what the engine trades (apps.engine.services, audited).
    path("plans/", plans.PlanListView.as_view(), name="plans"),
    path("plans/<int:plan_id>/", plans.PlanEditView.as_view(), name="plan_edit"),
    path("plans/<int:plan_id>/active/", plans.PlanActiveView.as_view(), name="plan_active"),
    path("security/", SecurityLogView.as_view(), name="security"),
    path("account/logout/", LogoutView.as_view(), name="logout"),
    # JSON endpoints for scripts (same login, CSRF and services).
    path("api/mode", api.ModeSetApi.as_view(), name="api_mode"),
    path("api/kill", api.KillSwitchApi.as_view(), name="api_kill"),
    path("api/risk", api.RiskGetApi.as_view(), name="api_risk"),
    path("api/limits", api.RiskLimitSetApi.as_view(), name="api_limits"),
    path("api/plans", plans.PlanListApi.as_view(), name="api_plans"),
    path("api/plans/<int:plan_id>", plans.PlanDetailApi.as_view(), name="api_plan"),
]

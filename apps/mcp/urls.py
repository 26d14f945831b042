from django.urls import path

from apps.mcp import views

app_name = "mcp"

urlpatterns = [
    path("", views.AgentsView.as_view(), name="agents"),
    path("<int:agent_id>/revoke/", views.AgentRevokeView.as_view(), name="agent_revoke"),
]

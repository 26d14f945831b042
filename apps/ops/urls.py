from django.urls import path

from apps.ops import views

app_name = "ops"

urlpatterns = [
    path("health/ready", views.HealthDetailView.as_view(), name="health-ready"),
    path("ops/readiness/", views.ReadinessView.as_view(), name="readiness"),
    path("ops/checklists/", views.ChecklistView.as_view(), name="checklists"),
    path("ops/checklists/<int:pk>/", views.ChecklistView.as_view(), name="checklist"),
    path("ops/stress/", views.StressReportView.as_view(), name="stress"),
    path("ops/stress/<int:pk>/", views.StressReportView.as_view(), name="stress-report"),
    path(
        "ops/checklists/<int:pk>/items/<slug:key>/tick",
        views.ChecklistItemTickView.as_view(),
        name="checklist-tick",
    ),
]

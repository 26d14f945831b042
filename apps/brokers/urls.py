from django.urls import path

from apps.brokers import views

app_name = "brokers"

urlpatterns = [
    path("", views.ReconciliationView.as_view(), name="reconciliation"),
    path("run/", views.ReconcileNowView.as_view(), name="reconcile_now"),
    path(
        "discrepancies/<int:discrepancy_id>/resolve/",
        views.DiscrepancyResolveView.as_view(),
        name="discrepancy_resolve",
    ),
]

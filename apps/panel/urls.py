from django.urls import path

from apps.panel.views import OverviewView

app_name = "panel"

urlpatterns = [
    path("", OverviewView.as_view(), name="overview"),
]

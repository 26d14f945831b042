from django.contrib import admin
from django.urls import include, path

from apps.core.views import HealthView

admin.site.site_header = "Tradebot administration"
admin.site.site_title = "Tradebot"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", HealthView.as_view(), name="health"),
    path("", include("django_prometheus.urls")),
    path("", include("apps.panel.urls")),
]

from django.contrib import admin
from django.urls import include, path
from two_factor.admin import AdminSiteOTPRequired
from two_factor.urls import urlpatterns as two_factor_urlpatterns

from apps.core.views import HealthView, metrics_view
from apps.ops.auth_proxy import GrafanaAuthView
from apps.panel.enrolment import EnrolmentRequiredView, GuardedSetupView
from apps.panel.security_log import AuditedLoginView

# django-two-factor-auth's URLs: its login audits wrong codes (apps/panel/security_log.py),
# its setup wizard is closed to password-only sessions (apps/panel/enrolment.py).
_two_factor_patterns, _two_factor_app = two_factor_urlpatterns
two_factor_guarded = (
    [
        path("account/login/", AuditedLoginView.as_view(), name="login"),
        path("account/two_factor/setup/", GuardedSetupView.as_view(), name="setup"),
        *_two_factor_patterns,
    ],
    _two_factor_app,
)

# The admin needs an OTP-verified staff user too; its login goes to the two-factor login.
admin.site.__class__ = AdminSiteOTPRequired
admin.site.site_header = "Tradebot administration"
admin.site.site_title = "Tradebot"

urlpatterns = [
    path("admin/", admin.site.urls),
    # Two-factor login (password, then TOTP code, or a backup code).
    path("", include(two_factor_guarded)),
    path(
        "account/enrolment-required/",
        EnrolmentRequiredView.as_view(),
        name="enrolment_required",
    ),
    path("health", HealthView.as_view(), name="health"),
    # nginx's auth_request for /grafana/ (the panel's 2FA session in front of Grafana)
    path("auth/grafana", GrafanaAuthView.as_view(), name="grafana-auth"),
    # Prometheus, with its bearer token (METRICS_BEARER_TOKEN)
    path("metrics", metrics_view, name="prometheus-django-metrics"),
    path("ml/", include("apps.ml.urls")),
    path("agents/", include("apps.mcp.urls")),
    path("reconciliation/", include("apps.brokers.urls")),
    path("", include("apps.ops.urls")),
    path("", include("apps.notifications.urls")),
    path("", include("apps.panel.urls")),
]

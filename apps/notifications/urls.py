from django.urls import path

from apps.notifications import views

app_name = "notifications"

urlpatterns = [
    path("hooks/alertmanager/sms", views.SmsHookView.as_view(), name="alertmanager-sms"),
    path(
        "hooks/alertmanager/watchdog",
        views.WatchdogHookView.as_view(),
        name="alertmanager-watchdog",
    ),
]

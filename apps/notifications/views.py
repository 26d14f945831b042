"""Alertmanager's webhooks: thin views over the notification services.

Both endpoints take Alertmanager's webhook JSON (version 4), authenticated by a bearer
token (ALERTMANAGER_WEBHOOK_TOKEN; Alertmanager's ``http_config.authorization``) or HTTP
basic (ALERTMANAGER_WEBHOOK_USER / _PASSWORD). With neither configured they refuse
everything (503) rather than accept anyone. Errors are JSON ``{"error": ..., "field": ...}``
and logged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from apps.notifications.domain.alertmanager import PayloadError, WebhookMessage, parse_webhook
from apps.notifications.services.alertmanager import alertmanager_sms_forward
from apps.notifications.services.watchdog import watchdog_beat

logger = logging.getLogger(__name__)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def webhook_auth_problem(header: str) -> tuple[int, str]:
    """(0, "") when the Authorization header is accepted, else (status, why)."""
    token = settings.ALERTMANAGER_WEBHOOK_TOKEN
    user, password = settings.ALERTMANAGER_WEBHOOK_USER, settings.ALERTMANAGER_WEBHOOK_PASSWORD
    if not token and not (user and password):
        return 503, (
            "webhook authentication is not configured: set ALERTMANAGER_WEBHOOK_TOKEN "
            "(or ALERTMANAGER_WEBHOOK_USER and ALERTMANAGER_WEBHOOK_PASSWORD)"
        )
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and token and _same(value, token):
        return 0, ""
    if scheme.lower() == "basic" and user and password:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return 401, "malformed basic credentials"
        given_user, _, given_password = decoded.partition(":")
        if _same(given_user, user) & _same(given_password, password):
            return 0, ""
    if not header:
        return 401, "authentication required (Authorization: Bearer <token>)"
    return 401, "bad credentials"


@method_decorator(csrf_exempt, name="dispatch")
class AlertmanagerHookView(View):
    http_method_names = ["post"]
    handler: Callable[[WebhookMessage], dict[str, Any]]
    hook = ""

    def post(self, request: HttpRequest) -> JsonResponse:
        status, problem = webhook_auth_problem(request.headers.get("Authorization", ""))
        if status:
            logger.warning(
                "alertmanager %s hook: refused from %s: %s",
                self.hook,
                request.META.get("REMOTE_ADDR"),
                problem,
            )
            response = JsonResponse({"error": problem}, status=status)
            if status == 401:
                response["WWW-Authenticate"] = 'Bearer realm="alertmanager"'
            return response
        try:
            payload = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            return self._bad(f"the body is not JSON: {exc}", "")
        try:
            message = parse_webhook(payload)
        except PayloadError as exc:
            return self._bad(exc.message, exc.field)
        return JsonResponse({"ok": True, **type(self).handler(message)})

    def _bad(self, error: str, field: str) -> JsonResponse:
        logger.warning("alertmanager %s hook: bad payload (%s): %s", self.hook, field, error)
        return JsonResponse({"error": error, "field": field}, status=400)


def _sms(message: WebhookMessage) -> dict[str, Any]:
    return alertmanager_sms_forward(message=message)


def _watchdog(message: WebhookMessage) -> dict[str, Any]:
    beat = watchdog_beat(message=message)
    return {"last_seen_at": beat.last_seen_at.isoformat() if beat.last_seen_at else None}


class SmsHookView(AlertmanagerHookView):
    """Forward each firing alert as an SMS (Alertmanager's critical receiver)."""

    hook = "sms"
    handler = staticmethod(_sms)


class WatchdogHookView(AlertmanagerHookView):
    """Record the Watchdog heartbeat (Alertmanager's watchdog receiver, every minute)."""

    hook = "watchdog"
    handler = staticmethod(_watchdog)

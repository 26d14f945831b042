"""JSON endpoints for scripts: the same controls as the panel, the same checks and audit.

Authentication is the panel's: a session of an OTP-verified staff user, and CSRF on every
POST (send the csrftoken cookie's value as X-CSRFToken). Errors are 4xx JSON
``{"error": "<what was wrong>"}``; a refused attempt changes nothing and leaves an
AuditEvent "api.refused" (the service may audit its own refusal as well).

    POST /api/mode    {"mode": "pause" | "resume" | "normal" | "observation", "reason": "..."}
    POST /api/kill    {"reason": "...", "confirm": true}
    GET  /api/risk    -> apps.trading.selectors.risk_overview()
    POST /api/limits  {"account_id": 1 (default: the engine's account), "values": {"max_order_notional": "5000", ...}}
"""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import View
from django.views.csrf import csrf_failure as html_csrf_failure

from apps.accounts.models import Account
from apps.audit.services import audit_record
from apps.core.exceptions import ApplicationError
from apps.core.realtime import jsonable
from apps.panel.forms import REASON_MAX, mode_from_input
from apps.panel.views import actor_for
from apps.risk.models import ModeSource
from apps.risk.services import limits, modes
from apps.trading.selectors import risk_overview
from apps.trading.services import kill_switch

MAX_BODY = 64 * 1024


class ApiInputError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return error(f"CSRF check failed: {reason}", 403)
    return html_csrf_failure(request, reason=reason)


class VerifiedStaffApi(View):
    """401/403 JSON instead of the pages' redirects; then parse, call one service, audit."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return error("authentication required: log in with password and code", 401)
        if not user.is_verified():
            return error("two-factor verification required", 401)
        if not user.is_staff:
            return error("staff only", 403)
        try:
            return super().dispatch(request, *args, **kwargs)
        except ApiInputError as exc:
            self._refused(request, exc.message)
            return error(exc.message, exc.status)
        except ApplicationError as exc:
            self._refused(request, exc.message, code=getattr(exc, "code", ""))
            return error(exc.message, getattr(exc, "http_status", 400) or 400)

    def http_method_not_allowed(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> JsonResponse:
        response = error(f"method {request.method} not allowed", 405)
        response["Allow"] = ", ".join(m.upper() for m in self._allowed_methods())
        return response

    def _refused(self, request: HttpRequest, message: str, code: str = "") -> None:
        audit_record(
            actor=actor_for(request),
            action="api.refused",
            target=f"{request.method} {request.path}",
            data={
                "error": message,
                "code": code,
                "body": request.body[:2000].decode("utf-8", "replace"),
            },
        )

    @staticmethod
    def body(request: HttpRequest) -> dict[str, Any]:
        if len(request.body) > MAX_BODY:
            raise ApiInputError(f"body too large (max {MAX_BODY} bytes)", 413)
        try:
            data = json.loads(request.body or b"")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiInputError(f"malformed JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ApiInputError("the body must be a JSON object")
        return data

    @staticmethod
    def reason(data: dict[str, Any]) -> str:
        reason = data.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ApiInputError('"reason" is required (a non-empty string)')
        if len(reason) > REASON_MAX:
            raise ApiInputError(f'"reason" is too long (max {REASON_MAX} characters)')
        return reason.strip()


class ModeSetApi(VerifiedStaffApi):
    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> JsonResponse:
        data = self.body(request)
        if data.get("mode") == "kill":
            raise ApiInputError('use POST /api/kill with "confirm": true to engage the kill switch')
        mode = mode_from_input(data.get("mode"))
        if mode is None:
            raise ApiInputError(
                f"unknown mode {data.get('mode')!r}: use pause, resume, normal or observation"
            )
        reason = self.reason(data)
        state = modes.system_mode_set(
            mode=mode,
            actor=actor_for(request),
            source=ModeSource.API.value,
            reason=reason,
            user=request.user,
            otp_verified=request.user.is_verified(),
        )
        return JsonResponse(
            jsonable(
                {
                    "mode": state.mode,
                    "changed_at": state.changed_at,
                    "changed_by": state.changed_by,
                    "reason": state.reason,
                }
            )
        )


class KillSwitchApi(VerifiedStaffApi):
    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> JsonResponse:
        data = self.body(request)
        reason = self.reason(data)
        if data.get("confirm") is not True:
            raise ApiInputError('"confirm": true is required to engage the kill switch')
        report = kill_switch.kill_switch_engage(
            actor=actor_for(request), source=ModeSource.API.value, reason=reason
        )
        payload = asdict(report) if is_dataclass(report) else dict(vars(report))
        return JsonResponse(jsonable({"mode": "kill", **payload}))


class RiskGetApi(VerifiedStaffApi):
    http_method_names = ["get"]

    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse(jsonable(risk_overview()))


class RiskLimitSetApi(VerifiedStaffApi):
    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> JsonResponse:
        data = self.body(request)
        values = data.get("values")
        if not isinstance(values, dict) or not values:
            raise ApiInputError('"values" is required: an object of limit name -> value')
        if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values.values()):
            raise ApiInputError("each limit value must be a string or an integer (no floats)")
        account_id = data.get("account_id")
        if account_id is None:
            account = Account.objects.filter(name=settings.ENGINE_ACCOUNT).first()
            if account is None:
                raise ApiInputError(
                    f"no account {settings.ENGINE_ACCOUNT!r} yet: pass account_id", 404
                )
            account_id = account.id
        elif not isinstance(account_id, int) or isinstance(account_id, bool):
            raise ApiInputError('"account_id" must be an integer')
        elif not Account.objects.filter(id=account_id).exists():
            raise ApiInputError(f"no account with id {account_id}", 404)
        limit = limits.risk_limit_set(
            account_id=account_id,
            values={str(k): str(v) for k, v in values.items()},
            actor=actor_for(request),
        )
        fields = [f.name for f in limit._meta.fields if f.name not in ("id", "account")]
        return JsonResponse(
            jsonable({"account_id": account_id, **{f: getattr(limit, f) for f in fields}})
        )

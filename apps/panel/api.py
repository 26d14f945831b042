"""JSON endpoints for scripts: the same controls as the panel, the same checks and audit.

Authentication is the panel's: a session of an OTP-verified staff user, and CSRF on every
POST (send the csrftoken cookie's value as X-CSRFToken). Errors are 4xx JSON
``{"error": "<what was wrong>"}``; a refused attempt changes nothing and leaves an
AuditEvent "api.refused" (the service may audit its own refusal as well).

Bodies are refused, naming the field, when larger than 64 KiB (413), not UTF-8 JSON,
nested deeper than 20 levels, holding NaN/Infinity, or holding text PostgreSQL cannot
store (a NUL character, a lone surrogate such as "\\ud800") anywhere, keys included
(``apps.core.text``). The kill switch is the exception: it engages whenever its body
says ``"reason": "<text>", "confirm": true`` (up to 16 MiB, whatever else is in it).

    POST /api/mode    {"mode": "pause" | "resume" | "normal" | "observation", "reason": "..."}
    POST /api/kill    {"reason": "...", "confirm": true}   (engages whatever else the body holds:
                      an unstorable or over-long reason is cleaned, and the reply says how)
    GET  /api/risk    -> apps.trading.selectors.risk_overview()
    POST /api/limits  {"account_id": 1 (default: the engine's account), "values": {"max_order_notional": "5000", ...}}
"""

from __future__ import annotations

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
from apps.core.text import JsonInputError, JsonTooDeep, json_loads, json_members, json_parse
from apps.panel.forms import REASON_MAX, mode_from_input
from apps.panel.views import actor_for
from apps.risk.models import ModeSource
from apps.risk.services import limits, modes
from apps.trading.selectors import risk_overview
from apps.trading.services import kill_switch

MAX_BODY = 64 * 1024
# The kill switch reads more before it gives up: it must engage when asked, whatever else
# the body carries (nginx's client_max_body_size is lower still in deployment).
KILL_MAX_BODY = 16 * 1024 * 1024


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

    raw: bytes = b""

    def _refused(self, request: HttpRequest, message: str, code: str = "") -> None:
        audit_record(  # audit_record stores unstorable text cleaned (apps.core.text)
            actor=actor_for(request),
            action="api.refused",
            target=f"{request.method} {request.path}",
            data={
                "error": message,
                "code": code,
                "body": self.raw[:2000].decode("utf-8", "replace"),
            },
        )

    def raw_body(self, request: HttpRequest, limit: int = MAX_BODY) -> bytes:
        """The request body, at most ``limit`` bytes (else 413, before reading it all).

        Read from the stream rather than ``request.body``, whose own limit
        (DATA_UPLOAD_MAX_MEMORY_SIZE) would answer a bare 400 page, and kept for the audit.
        """
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            raise ApiInputError(f"body too large: {declared} bytes (max {limit} bytes)", 413)
        self.raw = request.read(limit + 1)
        if len(self.raw) > limit:
            raise ApiInputError(f"body too large (max {limit} bytes)", 413)
        return self.raw

    def body(self, request: HttpRequest) -> dict[str, Any]:
        try:
            data = json_parse(self.raw_body(request))
        except JsonInputError as exc:
            raise ApiInputError(exc.message) from None
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
    """Engages whenever the body says ``"reason": "<text>", "confirm": true``.

    Nothing else in the body may stop it: other members may be too deep, non-finite or
    junk, and the reason is cleaned by the service (unstorable characters replaced, cut
    to length), the reply's "reason" and "reason_cleaned" saying what was stored.
    """

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> JsonResponse:
        reason, confirm = self._reason_and_confirm(self.raw_body(request, KILL_MAX_BODY))
        if not isinstance(reason, str) or not reason.strip():
            raise ApiInputError('"reason" is required (a non-empty string)')
        if confirm is not True:
            raise ApiInputError('"confirm": true is required to engage the kill switch')
        report = kill_switch.kill_switch_engage(
            actor=actor_for(request), source=ModeSource.API.value, reason=reason
        )
        payload = asdict(report) if is_dataclass(report) else dict(vars(report))
        return JsonResponse(jsonable({"mode": "kill", **payload}))

    @staticmethod
    def _reason_and_confirm(raw: bytes) -> tuple[object, object]:
        try:
            data = json_loads(raw)
        except JsonTooDeep:
            data = None  # read the two members on their own, below
        except JsonInputError as exc:
            raise ApiInputError(exc.message) from None
        if isinstance(data, dict):
            return data.get("reason"), data.get("confirm")
        if data is not None:
            raise ApiInputError("the body must be a JSON object")
        try:
            members = json_members(raw)
            return tuple(  # type: ignore[return-value]
                json_loads(members[name].encode()) if name in members else None
                for name in ("reason", "confirm")
            )
        except JsonInputError as exc:
            raise ApiInputError(exc.message) from None


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

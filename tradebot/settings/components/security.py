"""Logging in to the panel and the admin: password + TOTP, lockout, session limits.

- Two factors: django-two-factor-auth's login wizard (password, then a TOTP code from an
  authenticator app enrolled with a QR code); django_otp marks the session verified.
  Every panel page, JSON endpoint, the websocket and the admin require a verified staff user.
- Lockout: django-axes counts failed password attempts per username and per address; after
  AXES_FAILURE_LIMIT failures the account is locked for AXES_COOLOFF_TIME.
  AxesStandaloneBackend must come FIRST in AUTHENTICATION_BACKENDS (it only refuses
  locked-out users; ModelBackend logs in). It needs the request: in tests use
  ``client.force_login`` or ``client.login(request=HttpRequest(), ...)``.
- Sessions end 12 h after login (absolute) and after 30 min without a request (idle):
  apps.panel.middleware.SessionLimitsMiddleware; the websocket checks the same limits
  (apps.panel.ws_auth).
"""

from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from tradebot.env import env, env_number

# The apps (django_otp, its static and totp plugins, two_factor, axes) and the middleware
# (SessionLimitsMiddleware, OTPMiddleware, AxesMiddleware) are listed in base.py.

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

LOGIN_URL = "two_factor:login"
LOGIN_REDIRECT_URL = "panel:overview"
LOGOUT_REDIRECT_URL = "two_factor:login"

# Sessions: absolute and idle limits (seconds). The cookie and the stored session expire
# at the absolute limit; the middleware ends idle sessions.
SESSION_ABSOLUTE_SECONDS = env_number("SESSION_ABSOLUTE_SECONDS", 12 * 3600, int, minimum=60)
SESSION_IDLE_SECONDS = env_number("SESSION_IDLE_SECONDS", 30 * 60, int, minimum=60)
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_SECONDS
# How often an open panel websocket re-reads its session (idle/absolute limits, logout
# missed, password change): it closes with 4401 when the session has ended.
PANEL_WS_SESSION_CHECK_SECONDS = env_number("PANEL_WS_SESSION_CHECK_SECONDS", 30, int, minimum=1)
SESSION_SAVE_EVERY_REQUEST = False  # the middleware saves the last-activity time itself
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# JSON errors for /api/ (HTML elsewhere) when the CSRF check fails.
CSRF_FAILURE_VIEW = "apps.panel.api.csrf_failure"

# django-axes
AXES_FAILURE_LIMIT = env_number("AXES_FAILURE_LIMIT", 5, int, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_number("AXES_COOLOFF_MINUTES", 15, int, minimum=1))
# Either one locks: the account (username) or the client address. The kill switch also
# has the CLI path when the panel is locked out.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # no "AXES: BEGIN" line on every start (commands print one-line errors)
AXES_LOCKOUT_TEMPLATE = "panel/lockout.html"
# authenticate(username=...) from the login wizard, or its "auth-username" POST field.
AXES_USERNAME_CALLABLE = "apps.panel.auth.axes_username"
AXES_SENSITIVE_PARAMETERS = ["password", "auth-password", "token-otp_token"]

# django-two-factor-auth / django_otp
TWO_FACTOR_REMEMBER_COOKIE_AGE = None  # never skip the second factor on a "remembered" browser
OTP_TOTP_ISSUER = "Tradebot"
OTP_TOTP_THROTTLE_FACTOR = 1


def _metrics_bearer_token() -> str:
    token = env.str("METRICS_BEARER_TOKEN", default="").strip()
    path = env.str("METRICS_BEARER_TOKEN_FILE", default="")
    if path and not token:
        try:
            token = Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(
                f"METRICS_BEARER_TOKEN_FILE={path!r} cannot be read ({exc}): mount the metrics "
                "token file there (the one Prometheus reads, docs/deploy.md)"
            ) from None
    return token


# /metrics needs "Authorization: Bearer <this>" (Prometheus: authorization.credentials_file);
# /health/ready shows its details with it or to a verified staff user. Required in
# staging/prod (tradebot/settings/validation.py); unset in dev/test = /metrics open.
METRICS_BEARER_TOKEN = _metrics_bearer_token()

# Content-Security-Policy (django-csp): scripts, styles, images and connections from this
# origin only; no inline script or style (the panel's pages keep theirs in static files),
# no plugins, no framing, forms post here only. The websocket is same-origin ('self').
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

"""ASGI entry point: HTTP through Django, websockets through Channels."""

from tradebot.env import setup_settings_module

setup_settings_module()

from django.core.asgi import get_asgi_application  # noqa: E402

# Django must be set up before anything imports models (Channels docs, tutorial part 2).
django_asgi_app = get_asgi_application()


def _database_role_check() -> None:
    """staging/prod: refuse to start as a superuser or the owner (apps/core/apps.py).

    An unreachable database is not a refusal: /health reports it and the check runs on
    the first connection.
    """
    from django.conf import settings
    from django.db import OperationalError, connection

    if not settings.DATABASE_ROLE_CHECK:
        return
    try:
        connection.ensure_connection()
    except OperationalError:
        return
    connection.close()


_database_role_check()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from apps.panel.ws_auth import OTPAuthMiddlewareStack  # noqa: E402
from tradebot.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            # Session user + django_otp verification + session limits (apps/panel/ws_auth.py).
            OTPAuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)

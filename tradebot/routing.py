"""Websocket routes of every app (tradebot/asgi.py wraps them in auth and origin checks)."""

from apps.panel.routing import websocket_urlpatterns

__all__ = ["websocket_urlpatterns"]

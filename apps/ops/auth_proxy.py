"""Grafana behind the panel's own login: nginx asks this view before proxying /grafana/.

nginx (`docker/nginx.conf`, ``auth_request``) sends every /grafana/ request's cookies here
first: an OTP-verified staff session answers 204 with ``X-Auth-User`` (the username) and
``X-Auth-Role`` (Admin for a superuser, else Viewer), which nginx passes to Grafana in its
auth-proxy headers (set by nginx, never the client's); anything else answers 401 and nginx
sends the browser to the two-factor login. Grafana runs with ``GF_AUTH_PROXY_ENABLED`` and
its login form off, and believes the headers from nginx's address only
(``GF_AUTH_PROXY_WHITELIST``).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views import View

from apps.core.access import is_verified_staff


class GrafanaAuthView(View):
    def get(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if not is_verified_staff(user):
            return HttpResponse(status=401)
        response = HttpResponse(status=204)
        response["X-Auth-User"] = user.get_username()
        response["X-Auth-Role"] = "Admin" if user.is_superuser else "Viewer"
        response["Cache-Control"] = "no-store"
        return response

"""Request headers that get stored are cleaned before anything stores them.

django-axes records every failed login's ``User-Agent`` in PostgreSQL, which refuses a NUL
byte: a login attempt with a NUL in its browser string answered 500 and its failure was not
counted. Control and format characters (NUL, escapes, bidi overrides) and lone surrogates
are dropped from the headers below, and each is cut to ``HEADER_MAX`` characters.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps.core.text import printable

CLEANED = ("HTTP_USER_AGENT", "HTTP_REFERER")
HEADER_MAX = 512


class CleanHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for name in CLEANED:
            value = request.META.get(name)
            if isinstance(value, str):
                request.META[name] = printable(value, HEADER_MAX)
        return self.get_response(request)

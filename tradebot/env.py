"""Which environment we run in, and where its configuration comes from.

Configuration is read from the OS environment and from ``config/.env.<ENVIRONMENT>``
(OS environment wins). In dev and test, ``var/services.env`` (written by
``scripts/services.py`` when it starts the embedded PostgreSQL and Redis) fills
whatever is still missing. Only ``config/.env.*.example`` files are committed.
"""

from __future__ import annotations

import os
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


class Environment(StrEnum):
    DEV = "dev"
    TEST = "test"
    STAGING = "staging"
    PROD = "prod"

    @property
    def is_deployed(self) -> bool:
        return self in (Environment.STAGING, Environment.PROD)


SETTINGS_MODULES = {
    Environment.DEV: "tradebot.settings.dev",
    Environment.TEST: "tradebot.settings.test",
    Environment.STAGING: "tradebot.settings.deployed",
    Environment.PROD: "tradebot.settings.deployed",
}


def current_environment() -> Environment:
    raw = os.environ.get("ENVIRONMENT", "dev").strip().lower()
    try:
        return Environment(raw)
    except ValueError:
        allowed = ", ".join(e.value for e in Environment)
        raise ImproperlyConfigured(
            f"ENVIRONMENT={raw!r} is not one of {allowed}: set ENVIRONMENT to one of them"
        ) from None


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
_UNSET = object()
_Number = TypeVar("_Number", int, float, Decimal)


def _raw(name: str, default: object) -> str | None:
    raw = os.environ.get(name)
    if raw is None and default is _UNSET:
        raise ImproperlyConfigured(
            f"{name} is not set: set it in the environment or config/.env.<env>"
        )
    return raw


def env_bool(name: str, default: bool) -> bool:
    """A boolean that refuses anything but true/false/yes/no/on/off/1/0 (no silent False)."""
    raw = _raw(name, default)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use true or false")


def env_number(
    name: str, default: _Number, cast: type[_Number], *, minimum: float | None = None
) -> _Number:
    """An int, float or Decimal, with a clear error naming the variable."""
    raw = _raw(name, default)
    if raw is None:
        return default
    try:
        value = cast(raw.strip())
    except (ValueError, ArithmeticError):
        example = f" (e.g. {name}={default})" if default is not _UNSET else ""
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a valid {cast.__name__.lower()}: set a number{example}"
        ) from None
    if minimum is not None and not value >= minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be >= {minimum}")
    return value


def env_file_for(environment: Environment) -> Path:
    """The env file of an environment; ``ENV_FILE`` overrides the default location."""
    override = os.environ.get("ENV_FILE")
    return Path(override) if override else BASE_DIR / "config" / f".env.{environment.value}"


def load_env_files(environment: Environment) -> Path | None:
    """Load the environment's env file (and the dev services file) under the OS environment.

    Returns the env file path when one was read, so that deployed settings can
    check its permissions.
    """
    path = env_file_for(environment)
    loaded = None
    if path.is_file():
        # read_env uses setdefault semantics: a variable already in os.environ wins.
        environ.Env.read_env(str(path), overwrite=False)
        loaded = path
    if not environment.is_deployed:
        services = BASE_DIR / "var" / "services.env"
        if services.is_file():
            own_database = "DATABASE_URL" in os.environ and "DATABASE_OWNER_URL" not in os.environ
            environ.Env.read_env(str(services), overwrite=False)
            if own_database:
                # DATABASE_URL and DATABASE_OWNER_URL go together: never the embedded
                # server's owner with another database (e.g. a test run's).
                os.environ.pop("DATABASE_OWNER_URL", None)
    return loaded


def default_settings_module() -> str:
    return SETTINGS_MODULES[current_environment()]


def setup_settings_module() -> None:
    """Used by manage.py, asgi.py and celery.py: an explicit DJANGO_SETTINGS_MODULE wins."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", default_settings_module())

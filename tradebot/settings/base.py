"""Settings shared by every environment; overlays (dev, test, deployed) stay small.

Everything is read from the environment (see tradebot/env.py for the precedence).
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from tradebot.env import BASE_DIR, current_environment, env, env_bool, load_env_files

ENVIRONMENT = current_environment()
ENV_FILE_LOADED = load_env_files(ENVIRONMENT)

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
# Old keys still accepted while DJANGO_SECRET_KEY is rotated (sessions, and the broker
# credentials' Fernet keys: apps/credentials).
SECRET_KEY_FALLBACKS = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])
# Salt of the broker credentials' Fernet keys (django-fernet-encrypted-fields); required
# in staging/prod (tradebot/settings/validation.py). Changing it makes them unreadable.
SALT_KEY = env.str("SALT_KEY", default="")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    "django_celery_beat",
    "django_prometheus",
    # Login: password + TOTP, lockout (tradebot/settings/components/security.py)
    "django_otp",
    "django_otp.plugins.otp_static",
    "django_otp.plugins.otp_totp",
    "two_factor",
    "axes",
    "apps.core",
    "apps.accounts",
    "apps.audit",
    "apps.risk",
    "apps.marketdata",
    "apps.trading",
    "apps.backtest",
    "apps.engine",
    "apps.brokers",
    "apps.ml",
    "apps.panel",
    "apps.ops",
    "apps.credentials",
    "apps.notifications",
    "apps.telegram",
    "apps.mcp",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Stored headers (User-Agent, Referer) without NUL/control characters (apps/core/middleware.py).
    "apps.core.middleware.CleanHeadersMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Session limits before OTP: an ended session reaches the views anonymous and unverified.
    "apps.panel.middleware.SessionLimitsMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    "axes.middleware.AxesMiddleware",  # last (django-axes docs)
]

ROOT_URLCONF = "tradebot.urls"
ASGI_APPLICATION = "tradebot.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# PostgreSQL is the system of record; there is no SQLite fallback on purpose
# (SQLite ignores select_for_update and stores decimals differently).
#
# Two roles (apps/core/db_roles.py, docs/security.md): DATABASE_URL is the application role
# that every process connects as (web, workers, beat, engine, bots): no DDL, and only INSERT
# and SELECT on the append-only decision log and audit trail. DATABASE_OWNER_URL is the role
# that owns the tables; only the owner commands (manage.py migrate, db_grant_app_role) use
# it: manage.py sets TRADEBOT_DB_ROLE=owner for them. Give DATABASE_OWNER_URL to the
# migrate step only (compose: the migrate service). Without it one role does both
# (the test suite's own connection; tests/audit/test_app_role.py uses the real two).
DATABASE_APP_URL = env.str("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/tradebot")
DATABASE_OWNER_URL = env.str("DATABASE_OWNER_URL", default="")
DATABASE_AS_OWNER = os.environ.get("TRADEBOT_DB_ROLE", "") == "owner" and bool(DATABASE_OWNER_URL)
DATABASES = {
    "default": env.db_url_config(DATABASE_OWNER_URL if DATABASE_AS_OWNER else DATABASE_APP_URL)
}


def _owner_password(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as error:
        raise ImproperlyConfigured(
            f"DATABASE_OWNER_PASSWORD_FILE={path!r} cannot be read ({error}): "
            "mount the owner's password file there (docs/deploy.md)"
        ) from None


if DATABASE_AS_OWNER and (_owner_password_file := env.str("DATABASE_OWNER_PASSWORD_FILE", "")):
    # compose: the owner's password is a secret file given to postgres and migrate only
    DATABASES["default"]["PASSWORD"] = _owner_password(_owner_password_file)
DATABASES["default"]["ENGINE"] = "django_prometheus.db.backends.postgresql"
DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# staging/prod: a process refuses a database connection whose role is a superuser, the
# owner, or may rewrite the append-only tables (apps/core/apps.py). Not for the owner commands.
DATABASE_ROLE_CHECK = ENVIRONMENT.is_deployed and not DATABASE_AS_OWNER
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        "KEY_PREFIX": f"tradebot-{ENVIRONMENT.value}",
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# LOGIN_URL, AUTHENTICATION_BACKENDS, sessions and lockout: components/security.py

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

from tradebot.settings.components.brokers import *  # noqa: E402, F403
from tradebot.settings.components.celery import *  # noqa: E402, F403
from tradebot.settings.components.channels import *  # noqa: E402, F403
from tradebot.settings.components.influx import *  # noqa: E402, F403
from tradebot.settings.components.logging import *  # noqa: E402, F403
from tradebot.settings.components.marketdata import *  # noqa: E402, F403
from tradebot.settings.components.mcp import *  # noqa: E402, F403
from tradebot.settings.components.notifications import *  # noqa: E402, F403
from tradebot.settings.components.ops import *  # noqa: E402, F403
from tradebot.settings.components.security import *  # noqa: E402, F403
from tradebot.settings.components.trading import *  # noqa: E402, F403

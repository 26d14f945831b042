"""test: real PostgreSQL and Redis (see scripts/services.py), fast password hashing."""

from .base import *  # noqa: F403
from .base import env

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="django-insecure-test-only-key")
SALT_KEY = env.str("SALT_KEY", default="test-only-salt-key")
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
# One test database per checkout: two checkouts testing on the same server at once
# (a developer's tree and a CI clone) must not drop each other's database.
import hashlib  # noqa: E402

DATABASES["default"]["TEST"] = {  # noqa: F405
    "NAME": f"test_tradebot_{hashlib.sha1(str(BASE_DIR).encode()).hexdigest()[:8]}"  # noqa: F405, S324
    + env.str("TEST_DB_SUFFIX", default="")  # parallel runs in one checkout
}

# Django empties the database between transactional tests with TRUNCATE, which the
# append-only tables refuse (apps/audit/migrations/0004) unless a superuser session asks
# for it: the suite's own connection does. The application role can never
# (tests/audit/test_app_role.py).
DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c tradebot.allow_truncate=on"  # noqa: F405

# Redis pub/sub channels ignore the database number: give this checkout (and parallel
# runs in it) its own channel-layer prefix too, so their websocket events never mix.
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = (  # noqa: F405
    "tradebot-test-" + DATABASES["default"]["TEST"]["NAME"].removeprefix("test_tradebot_")  # noqa: F405
)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

INSTALLED_APPS = [*INSTALLED_APPS, "apps.devtools"]  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

"""dev: the embedded or local services, replayed data, the paper broker only."""

from tradebot.env import env_bool

from .base import *  # noqa: F403
from .base import env

DEBUG = env_bool("DJANGO_DEBUG", True)
# A dev-only key: deployed settings refuse anything like it.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="django-insecure-dev-only-key-not-for-deployment")
SALT_KEY = env.str("SALT_KEY", default="dev-only-salt-not-for-deployment")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [*INSTALLED_APPS, "apps.devtools"]  # noqa: F405
# Static files straight from static/ (no collectstatic in dev).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

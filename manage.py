#!/usr/bin/env python
"""Django's command-line utility for administrative tasks.

A configuration error (bad ENVIRONMENT, a bad or missing env value, a refused
staging/prod configuration) is one line on stderr and exit code 2, before any
command runs, so nothing is written.
"""

import importlib
import os
import sys

# restore replaces the tables (pg_restore --clean), then grants the application role again.
OWNER_COMMANDS = frozenset({"migrate", "db_grant_app_role", "restore"})


def main() -> None:
    from django.core.exceptions import ImproperlyConfigured

    # The commands that change the schema connect as the owner role (DATABASE_OWNER_URL,
    # tradebot/settings/base.py); every other command as the application role.
    if sys.argv[1:2] and sys.argv[1] in OWNER_COMMANDS:
        os.environ["TRADEBOT_DB_ROLE"] = "owner"
    try:
        from tradebot.env import setup_settings_module

        setup_settings_module()
        importlib.import_module(os.environ["DJANGO_SETTINGS_MODULE"])
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        sys.exit(2)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Render config/alertmanager/alertmanager.yml.tmpl with values from the environment.

    python scripts/render_alertmanager.py OUTPUT.yml [--env-file config/.env.prod]

Every ${VAR} must be set (a missing one is named and nothing is written); the output
is written with mode 600 because it holds the Telegram token and the SMTP password.
TELEGRAM_API_URL defaults to https://api.telegram.org, WATCHDOG_URL and
SMS_WEBHOOK_URL to the app's own endpoints.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "config" / "alertmanager" / "alertmanager.yml.tmpl"
DEFAULTS = {
    "TELEGRAM_API_URL": "https://api.telegram.org",
    "SMS_WEBHOOK_URL": "http://trading-core:8000/hooks/alertmanager/sms",
    "WATCHDOG_URL": "http://trading-core:8000/hooks/alertmanager/watchdog",
}


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'\"")
    return values


def render(values: dict[str, str]) -> str:
    text = TEMPLATE.read_text()
    needed = sorted(set(re.findall(r"\$\{([A-Z_]+)\}", text)))
    missing = [name for name in needed if not values.get(name)]
    if missing:
        raise SystemExit(
            f"render_alertmanager: missing values: {', '.join(missing)} "
            "(set them in the environment or the env file)"
        )
    if not values["TELEGRAM_CHAT_ID"].lstrip("-").isdigit():
        raise SystemExit("render_alertmanager: TELEGRAM_CHAT_ID must be a number (the chat's id)")
    return Template(text).substitute(values)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("output", type=Path)
    parser.add_argument("--env-file", type=Path)
    args = parser.parse_args()
    values = dict(DEFAULTS)
    if args.env_file:
        values.update(read_env_file(args.env_file))
    values.update({k: v for k, v in os.environ.items() if v})
    rendered = render(values)
    args.output.write_text(rendered)
    args.output.chmod(0o600)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

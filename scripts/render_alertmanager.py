#!/usr/bin/env python3
"""Render config/alertmanager/alertmanager.yml.tmpl with values from the environment.

    python scripts/render_alertmanager.py OUTPUT.yml [--env-file config/.env.prod]

Every ${VAR} must be set (a missing one is named and nothing is written). The output holds
the Telegram token and the SMTP password: it is written with mode 640, group
ALERTMANAGER_CONFIG_GID when set (you must belong to it, or be root), else your own group,
and never readable by others. The Alertmanager image runs as nobody; compose gives it that
group (``group_add: ${ALERTMANAGER_CONFIG_GID}``), so it can read the file and no one else
can. The script prints the group id to set.
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
    gid = values.get("ALERTMANAGER_CONFIG_GID", "")
    if gid and not gid.isdigit():
        raise SystemExit(
            f"render_alertmanager: ALERTMANAGER_CONFIG_GID must be a numeric group id, not {gid!r}"
        )
    group = write_private(args.output, rendered, int(gid) if gid else None)
    print(
        f"wrote {args.output} (mode 640, group {group}): set ALERTMANAGER_CONFIG_GID={group} "
        "for compose"
    )
    return 0


def write_private(path: Path, text: str, gid: int | None) -> int:
    """Write text to path, readable by its owner and group only (never briefly by others);
    returns the file's group id."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            if gid is not None:
                try:
                    os.fchown(f.fileno(), -1, gid)
                except PermissionError:
                    raise SystemExit(
                        f"render_alertmanager: cannot give {path} the group {gid}: you are not "
                        "in that group (run as a member, or with sudo)"
                    ) from None
            os.fchmod(f.fileno(), 0o640)
            group = os.fstat(f.fileno()).st_gid
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return group


if __name__ == "__main__":
    sys.exit(main())

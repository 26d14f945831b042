"""Logging for operations: secrets masked, one file per process rotated daily, kept 90 days.

Wired in tradebot/settings/components/logging.py:

- ``SecretMaskingFilter`` on every handler: the values of secret settings (keys,
  tokens, passwords, credentials in URLs) and patterns such as ``password=...``,
  ``Authorization: Bearer ...`` and Telegram bot tokens are replaced by ``***``.
- ``DailyFileHandler`` when LOG_DIR is set: ``<LOG_DIR>/<process>.log`` (web, worker,
  beat, engine, ... each its own file, so no two processes rotate one file), rotated
  at midnight UTC to ``<process>.log.YYYY-MM-DD``, 90 kept (LOG_RETENTION_DAYS).
  It reopens its file when another writer (a forked Celery child) already rotated it.
- ``JsonFormatter``: apps.core's, plus the masked exception text.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import stat
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from apps.core.logging import JsonFormatter as CoreJsonFormatter

MASK = "***"
# Settings whose NAME ends like this hold secrets (AXES_PASSWORD_FORM_FIELD does not).
SECRET_SETTING = re.compile(
    r"(SECRET|SECRET_KEY|TOKEN|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY|DSN|CREDENTIALS?)$"
)
PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # key=value / key: value / "key": "value" for secret-looking keys
    (
        re.compile(
            r"(?i)\b((?:[a-z_]*_)?(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key))"
            r"([\"']?\s*[=:]\s*[\"']?)([^\s\"',;&}]+)"
        ),
        rf"\1\2{MASK}",
    ),
    (re.compile(r"(?i)(authorization\s*[:=]\s*(?:bearer|basic|token)\s+)(\S+)"), rf"\1{MASK}"),
    (re.compile(r"(?i)\b(bearer\s+)([A-Za-z0-9._~+/=-]{16,})"), rf"\1{MASK}"),
    # credentials in URLs: scheme://user:password@host
    (re.compile(r"(://[^\s:/@]*:)([^\s@/]+)@"), rf"\1{MASK}@"),
    # Telegram bot tokens (also inside /bot<token>/ URLs)
    (re.compile(r"\d{6,}:[A-Za-z0-9_-]{30,}"), MASK),
)
MIN_SECRET_LENGTH = 6
LOG_FILE_MODE = 0o640  # owner writes, the log shipper's group reads, nobody else


def _secret_values() -> list[str]:
    """Values of secret settings (longest first), read once Django settings are ready."""
    try:
        from django.conf import settings

        if not settings.configured:
            return []
        values: set[str] = set()
        for name in dir(settings):
            if name.isupper() and SECRET_SETTING.search(name):
                value = getattr(settings, name, None)
                if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
                    values.add(value)
        for db in getattr(settings, "DATABASES", {}).values():
            password = db.get("PASSWORD")
            if isinstance(password, str) and len(password) >= MIN_SECRET_LENGTH:
                values.add(password)
    except Exception:  # noqa: BLE001 - logging must never fail on settings
        return []
    return sorted(values, key=len, reverse=True)


class SecretMaskingFilter(logging.Filter):
    """Masks secrets in the message, its arguments and the exception text of every record."""

    def __init__(self, name: str = "", extra_values: list[str] | None = None) -> None:
        super().__init__(name)
        self._values: list[str] | None = None
        self._extra = [v for v in (extra_values or []) if v]

    def values(self) -> list[str]:
        if self._values is None:
            found = _secret_values()
            if not found:  # settings not ready yet: try again on a later record
                return self._extra
            self._values = sorted({*found, *self._extra}, key=len, reverse=True)
        return self._values

    def mask(self, text: str) -> str:
        for value in self.values():
            if value in text:
                text = text.replace(value, MASK)
        for pattern, repl in PATTERNS:
            text = pattern.sub(repl, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: keep the raw message
            message = str(record.msg)
        record.msg = self.mask(message)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = self.mask(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


class JsonFormatter(CoreJsonFormatter):
    """apps.core's JSON lines, plus the (masked) exception text the filter rendered."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if record.exc_info or not record.exc_text:
            return line
        import json

        payload = json.loads(line)
        payload["exc"] = record.exc_text
        return json.dumps(payload, default=str)


def process_role(argv: list[str] | None = None) -> str:
    """A short name of this process for its log file: web, worker, beat, engine, ..."""
    argv = list(sys.argv if argv is None else argv)
    explicit = os.environ.get("LOG_PROCESS_NAME")
    if explicit:
        return re.sub(r"[^A-Za-z0-9_.-]", "_", explicit)
    prog = Path(argv[0]).name if argv else "python"
    rest = argv[1:]
    if prog in ("celery",) or "celery" in rest[:1]:
        for word in ("worker", "beat", "flower"):
            if word in rest:
                queues = next(
                    (rest[i + 1] for i, a in enumerate(rest[:-1]) if a in ("-Q", "--queues")), ""
                )
                return f"celery-{word}" + (f"-{queues.replace(',', '-')}" if queues else "")
        return "celery"
    if prog in ("daphne", "uvicorn", "gunicorn"):
        return "web"
    if prog == "manage.py" or (rest and rest[0].endswith("manage.py")):
        cmd = next(
            (a for a in rest if not a.endswith("manage.py") and not a.startswith("-")), "manage"
        )
        return cmd
    return re.sub(r"[^A-Za-z0-9_.-]", "_", Path(prog).stem) or "python"


class DailyFileHandler(logging.handlers.TimedRotatingFileHandler):
    """TimedRotatingFileHandler: ``<directory>/<process>.log``, midnight UTC, backupCount=90.

    Safe when several processes inherit it (Celery prefork children): before each
    write it reopens the file if another process rotated it, and a rollover that
    finds today's rotated file already there just reopens instead of overwriting.
    Files are created 0640 (an existing wider file is narrowed), whatever the umask: logs
    carry account names, orders and P&L.
    """

    def __init__(
        self,
        directory: str,
        backupCount: int = 90,
        role: str | None = None,
        **kwargs: Any,  # noqa: N803
    ) -> None:
        Path(directory).mkdir(mode=0o750, parents=True, exist_ok=True)
        filename = str(Path(directory) / f"{role or process_role()}.log")
        kwargs.setdefault("encoding", "utf-8")
        super().__init__(filename, when="midnight", utc=True, backupCount=backupCount, **kwargs)
        self._inode = self._stat_inode()

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LOG_FILE_MODE)
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) & ~LOG_FILE_MODE:
                os.fchmod(fd, LOG_FILE_MODE)
        except PermissionError:  # another user's file: leave its mode to its owner
            pass
        return open(fd, "a", encoding=self.encoding, errors=self.errors)  # noqa: SIM115

    def _stat_inode(self) -> int | None:
        try:
            return os.stat(self.baseFilename).st_ino
        except FileNotFoundError:
            return None

    def emit(self, record: logging.LogRecord) -> None:
        current = self._stat_inode()
        if self.stream is not None and current != self._inode:
            self.stream.close()
            self.stream = self._open()  # type: ignore[assignment]
            self._inode = self._stat_inode()
        super().emit(record)

    def doRollover(self) -> None:  # noqa: N802 - logging's naming
        t = self.rolloverAt - self.interval
        dated = self.rotation_filename(
            self.baseFilename + "." + datetime.utcfromtimestamp(t).strftime(self.suffix)  # noqa: DTZ004 - utc by construction
        )
        if os.path.exists(dated):  # another process rotated already: follow it
            if self.stream:
                self.stream.close()
                self.stream = None  # type: ignore[assignment]
            self.stream = self._open()  # type: ignore[assignment]
            current = int(datetime.now().timestamp())  # noqa: DTZ005 - epoch seconds
            self.rolloverAt = self.computeRollover(current)
        else:
            super().doRollover()
        self._inode = self._stat_inode()


ROTATED = re.compile(r"^(?P<base>.+\.log)\.(?P<date>\d{4}-\d{2}-\d{2})(?:\.\d+)?$")


def logs_prune(*, directory: Path, now: datetime, keep_days: int = 90) -> dict[str, Any]:
    """Delete rotated files older than keep_days; rotate live files untouched since before today.

    A file whose process has not written since before midnight UTC is renamed to its
    dated name (its process, if any, reopens a new file on its next write).
    """
    deleted, rotated = [], []
    cutoff = (now - timedelta(days=keep_days)).date()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    if not directory.is_dir():
        return {"deleted": [], "rotated": [], "directory": str(directory), "missing": True}
    for path in sorted(directory.iterdir()):
        m = ROTATED.match(path.name)
        if m:
            if datetime.strptime(m["date"], "%Y-%m-%d").date() < cutoff:  # noqa: DTZ007 - a date
                path.unlink(missing_ok=True)
                deleted.append(path.name)
            continue
        if path.suffix == ".log" and path.is_file():
            st = path.stat()
            if st.st_size and st.st_mtime < midnight:
                day = datetime.utcfromtimestamp(st.st_mtime).strftime("%Y-%m-%d")  # noqa: DTZ004
                target = path.with_name(f"{path.name}.{day}")
                n = 1
                while target.exists():
                    target = path.with_name(f"{path.name}.{day}.{n}")
                    n += 1
                path.rename(target)
                rotated.append(target.name)
    return {"deleted": deleted, "rotated": rotated, "directory": str(directory)}

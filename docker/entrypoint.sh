#!/bin/sh
# Start one Tradebot process. Configuration comes from the environment (env_file in compose).
set -eu

# Compose hands the containers the env file's variables (env_file), not the file, so the
# app cannot check its mode itself: compose mounts the file read-only at ENV_FILE_MODE_CHECK
# and we refuse to start unless group and others have no access to it (chmod 600).
# stat needs no read permission, so this works whoever owns the file on the host.
if [ -n "${ENV_FILE_MODE_CHECK:-}" ]; then
    if ! mode=$(stat -L -c %a "$ENV_FILE_MODE_CHECK" 2>/dev/null); then
        echo "configuration error: refusing to start: the env file is not mounted at $ENV_FILE_MODE_CHECK" >&2
        exit 2
    fi
    case "$mode" in
        *00) ;;
        *)
            echo "configuration error: refusing to start: the env file (mounted at $ENV_FILE_MODE_CHECK) is mode $mode, readable by group or others: run \`chmod 600 config/.env.prod\` on the host" >&2
            exit 2 ;;
    esac
fi

role="${1:-web}"
shift || true
case "$role" in
    web)
        # X-Forwarded-For/-Proto are believed only from the proxy's address (nginx, which
        # sets them: docker/nginx.conf): anyone else's are ignored, so a client cannot
        # choose the address the login lockout records. compose sets nginx's fixed address.
        exec uvicorn tradebot.asgi:application --host 0.0.0.0 --port 8000 \
            --proxy-headers --forwarded-allow-ips="${FORWARDED_ALLOW_IPS:-127.0.0.1}" \
            --no-access-log "$@" ;;
    execution)
        # One sender per broker account: the execution queue has a single-process worker.
        # Its one thread also reads the broker connection: no gossip (it would receive and
        # process every other worker's task events), no mingle (nothing is revoked here),
        # no worker heartbeats; remote control (inspect ping, the healthcheck) stays on.
        # -q: no start-up banner on stdout (the logs are JSON lines, settings.LOGGING).
        exec celery -A tradebot -q worker -Q execution -P solo -n execution@%h -l INFO \
            --without-gossip --without-mingle --without-heartbeat "$@" ;;
    worker)
        exec celery -A tradebot -q worker -Q default,reconciliation,maintenance,ml -c 2 -n worker@%h -l INFO "$@" ;;
    beat)
        exec celery -A tradebot beat -l INFO "$@" ;;
    telegram)
        # The Telegram bot (long polling; needs TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID).
        exec python manage.py telegram_bot "$@" ;;
    mcp-market-data)
        # The MCP servers (apps/mcp, docs/mcp.md): streamable HTTP on the internal network,
        # each request authenticated by its agent's bearer token.
        exec python manage.py mcp_server market-data --transport http --host 0.0.0.0 \
            --port 8001 --public-url http://mcp-market-data:8001/mcp "$@" ;;
    mcp-trading)
        exec python manage.py mcp_server trading --transport http --host 0.0.0.0 \
            --port 8002 --public-url http://mcp-trading:8002/mcp "$@" ;;
    migrate)
        # As the owner (DATABASE_OWNER_URL, the migrate service only); it then grants the
        # application role of DATABASE_URL its privileges (apps/core/db_roles.py).
        exec python manage.py migrate --noinput "$@" ;;
    manage)
        exec python manage.py "$@" ;;
    *)
        echo "unknown role '$role': use web, execution, worker, beat, telegram, mcp-market-data, mcp-trading, migrate or manage" >&2
        exit 2 ;;
esac

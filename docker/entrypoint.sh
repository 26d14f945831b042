#!/bin/sh
# Start one Tradebot process. Configuration comes from the environment (env_file in compose).
set -eu
role="${1:-web}"
shift || true
case "$role" in
    web)
        exec uvicorn tradebot.asgi:application --host 0.0.0.0 --port 8000 \
            --proxy-headers --forwarded-allow-ips='*' --no-access-log "$@" ;;
    execution)
        # One sender per broker account: the execution queue has a single-process worker.
        exec celery -A tradebot worker -Q execution -P solo -n execution@%h -l INFO "$@" ;;
    worker)
        exec celery -A tradebot worker -Q default,reconciliation,maintenance,ml -c 2 -n worker@%h -l INFO "$@" ;;
    beat)
        exec celery -A tradebot beat -l INFO "$@" ;;
    telegram)
        # The Telegram bot (long polling; needs TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID).
        exec python manage.py telegram_bot "$@" ;;
    migrate)
        exec python manage.py migrate --noinput "$@" ;;
    manage)
        exec python manage.py "$@" ;;
    *)
        echo "unknown role '$role': use web, execution, worker, beat, telegram, migrate or manage" >&2
        exit 2 ;;
esac

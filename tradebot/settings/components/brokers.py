"""Brokers: which one trades, how to reach it, connectivity and reconciliation timing.

``TRADING_BROKER`` is checked against the environment at start-up
(apps.trading.venues.policy): a live broker outside prod, or an unknown name, stops
the start with one clear line. Credentials come from the environment or, encrypted,
from the database (apps.credentials) when kept there.
"""

from decimal import Decimal

from django.core.exceptions import ImproperlyConfigured

from apps.trading.venues.policy import broker_refusal
from tradebot.env import current_environment, env, env_bool, env_number

TRADING_BROKER = env.str("TRADING_BROKER", "paper").strip().lower()

KRAKEN_API_URL = env.str("KRAKEN_API_URL", "").strip()  # empty: the real Kraken
KRAKEN_API_KEY = env.str("KRAKEN_API_KEY", "")
KRAKEN_API_SECRET = env.str("KRAKEN_API_SECRET", "")
KRAKEN_TIMEOUT_SECONDS = env_number("KRAKEN_TIMEOUT_SECONDS", 10.0, float, minimum=0.1)
# ccxt's client-side throttle (Kraken's rate limits); the test suite turns it off for its fake.
KRAKEN_RATE_LIMIT = env_bool("KRAKEN_RATE_LIMIT", True)
KRAKEN_DEAD_MAN_TIMEOUT_SECONDS = env_number("KRAKEN_DEAD_MAN_TIMEOUT_SECONDS", 60, int, minimum=10)
KRAKEN_DEAD_MAN_REFRESH_SECONDS = env_number("KRAKEN_DEAD_MAN_REFRESH_SECONDS", 20, int, minimum=1)
if not 15 <= KRAKEN_DEAD_MAN_REFRESH_SECONDS <= 30 and current_environment().value != "test":
    raise ImproperlyConfigured(
        f"KRAKEN_DEAD_MAN_REFRESH_SECONDS={KRAKEN_DEAD_MAN_REFRESH_SECONDS} must be 15-30 "
        "(the dead-man switch's 60 s timeout must be refreshed well before it fires)"
    )

IBKR_HOST = env.str("IBKR_HOST", "127.0.0.1").strip()
IBKR_PORT = env_number("IBKR_PORT", 4002, int, minimum=1)
IBKR_CLIENT_ID = env_number("IBKR_CLIENT_ID", 17, int, minimum=0)
IBKR_ACCOUNT = env.str("IBKR_ACCOUNT", "").strip()
# The engine's market-data connection to TWS/Gateway: a client id of its own (TWS allows one
# connection per client id; the execution worker's is IBKR_CLIENT_ID, control actions such as
# the kill switch and start-up reconciliation use IBKR_CLIENT_ID + 1).
IBKR_FEED_CLIENT_ID = env_number("IBKR_FEED_CLIENT_ID", 19, int, minimum=0)
IBKR_TIMEOUT_SECONDS = env_number("IBKR_TIMEOUT_SECONDS", 10.0, float, minimum=0.1)

_refusal = broker_refusal(
    environment=current_environment().value,
    broker=TRADING_BROKER,
    kraken_api_url=KRAKEN_API_URL,
    ibkr_host=IBKR_HOST,
    ibkr_account=IBKR_ACCOUNT,
)
if _refusal:
    raise ImproperlyConfigured(_refusal)

# Connectivity: heartbeat/sync period, alert and PAUSE after this long disconnected,
# reconnect backoff (exponential with full jitter) between these bounds.
BROKER_SYNC_SECONDS = env_number("BROKER_SYNC_SECONDS", 5, int, minimum=1)
BROKER_DISCONNECT_ALERT_SECONDS = env_number("BROKER_DISCONNECT_ALERT_SECONDS", 120, int, minimum=0)
BROKER_DISCONNECT_PAUSE_SECONDS = env_number("BROKER_DISCONNECT_PAUSE_SECONDS", 300, int, minimum=0)
BROKER_BACKOFF_BASE_SECONDS = env_number("BROKER_BACKOFF_BASE_SECONDS", 1.0, float, minimum=0)
BROKER_BACKOFF_MAX_SECONDS = env_number("BROKER_BACKOFF_MAX_SECONDS", 60.0, float, minimum=0)

# Reconciliation: tolerances (absolute), how far back fills are re-requested.
RECONCILE_QUANTITY_TOLERANCE = env_number(
    "RECONCILE_QUANTITY_TOLERANCE", Decimal("1e-8"), Decimal, minimum=0
)
RECONCILE_CASH_TOLERANCE = env_number(
    "RECONCILE_CASH_TOLERANCE", Decimal("0.01"), Decimal, minimum=0
)
RECONCILE_FILLS_OVERLAP_SECONDS = env_number("RECONCILE_FILLS_OVERLAP_SECONDS", 600, int, minimum=0)
# An order sent this long ago with no ack is asked about (status query) by the sync.
ORDER_IN_FLIGHT_QUERY_SECONDS = env_number("ORDER_IN_FLIGHT_QUERY_SECONDS", 10, int, minimum=0)
# The outbox: an INITIALIZED order older than this many seconds is re-enqueued ...
ORDER_OUTBOX_MIN_AGE_SECONDS = env_number("ORDER_OUTBOX_MIN_AGE_SECONDS", 5, int, minimum=0)
# ... and one older than this is a stale decision: DENIED, never sent.
ORDER_OUTBOX_MAX_AGE_SECONDS = env_number("ORDER_OUTBOX_MAX_AGE_SECONDS", 120, int, minimum=1)

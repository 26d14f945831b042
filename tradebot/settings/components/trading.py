"""Trading settings: safety rails (ceilings) and the dev replay.

Per-account risk *policy* lives in the database (apps.risk.models.RiskLimit);
these are the hard ceilings no database row can raise. Every value is parsed
strictly: a bad one stops the start with the variable's name.
"""

import re
from decimal import Decimal

from django.core.exceptions import ImproperlyConfigured

from tradebot.env import BASE_DIR, env, env_bool, env_number

RISK_CEILING_MAX_ORDER_NOTIONAL = env_number(
    "RISK_CEILING_MAX_ORDER_NOTIONAL", Decimal("100000"), Decimal, minimum=0
)
RISK_CEILING_MAX_POSITION_NOTIONAL = env_number(
    "RISK_CEILING_MAX_POSITION_NOTIONAL", Decimal("250000"), Decimal, minimum=0
)

RISK_CEILING_MAX_GROSS_EXPOSURE = env_number(
    "RISK_CEILING_MAX_GROSS_EXPOSURE", Decimal("500000"), Decimal, minimum=0
)
RISK_CEILING_MAX_OPEN_POSITIONS = env_number("RISK_CEILING_MAX_OPEN_POSITIONS", 50, int, minimum=0)
# Fraction of the last price (0.10 = an order price at most 10 % away from it).
RISK_CEILING_PRICE_COLLAR_PCT = env_number(
    "RISK_CEILING_PRICE_COLLAR_PCT", Decimal("0.10"), Decimal, minimum=0
)
RISK_CEILING_MAX_ORDERS_PER_MINUTE = env_number(
    "RISK_CEILING_MAX_ORDERS_PER_MINUTE", 60, int, minimum=0
)
# The duplicate-order guard can be made longer per account, never shorter than this.
RISK_MIN_DUPLICATE_WINDOW_SECONDS = env_number(
    "RISK_MIN_DUPLICATE_WINDOW_SECONDS", 5, int, minimum=0
)
RISK_MAX_DUPLICATE_WINDOW_SECONDS = env_number(
    "RISK_MAX_DUPLICATE_WINDOW_SECONDS", 3600, int, minimum=0
)
# How old the market's reference price may be when an order is decided (the price collar
# compares the order's price with it; older, or none at all, denies the order). The age is
# taken on the market's clock: the signal's bar time minus the time the reference was seen
# (the feed's last trade, else the close time of the last stored bar), so a replay and a
# live feed are judged alike. With bars stored as they come, the previous bar closes when
# the signal's bar opens (age 0 on every timeframe); the limit is the gap in the data that
# is still tolerated: 5 minutes = four missing 1-minute bars, any missing hourly bar.
RISK_REFERENCE_PRICE_MAX_AGE_SECONDS = env_number(
    "RISK_REFERENCE_PRICE_MAX_AGE_SECONDS", 300, int, minimum=1
)

# Monitoring (fractions): drawdown warning / automatic KILL, daily loss warning / PAUSE.
RISK_DRAWDOWN_WARN = env_number("RISK_DRAWDOWN_WARN", Decimal("0.10"), Decimal, minimum=0)
RISK_DRAWDOWN_KILL = env_number("RISK_DRAWDOWN_KILL", Decimal("0.15"), Decimal, minimum=0)
RISK_DAILY_LOSS_WARN = env_number("RISK_DAILY_LOSS_WARN", Decimal("0.02"), Decimal, minimum=0)
RISK_DAILY_LOSS_PAUSE = env_number("RISK_DAILY_LOSS_PAUSE", Decimal("0.03"), Decimal, minimum=0)
# Start of the trading day, HH:MM UTC (market time: the bar time in a replay).
RISK_DAY_BOUNDARY_UTC = env.str("RISK_DAY_BOUNDARY_UTC", "00:00").strip()
if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", RISK_DAY_BOUNDARY_UTC):
    raise ImproperlyConfigured(
        f"RISK_DAY_BOUNDARY_UTC={RISK_DAY_BOUNDARY_UTC!r} must be HH:MM in UTC (e.g. 00:00)"
    )
RISK_VAR_WINDOW_DAYS = env_number("RISK_VAR_WINDOW_DAYS", 250, int, minimum=2)

# Paper broker
PAPER_FEE_RATE = env_number("PAPER_FEE_RATE", Decimal("0.001"), Decimal, minimum=0)
PAPER_SLIPPAGE_BPS = env_number("PAPER_SLIPPAGE_BPS", Decimal("0"), Decimal, minimum=0)
PAPER_VOLUME_PARTICIPATION = env_number(
    "PAPER_VOLUME_PARTICIPATION", Decimal("0.1"), Decimal, minimum=0
)
PAPER_STARTING_CASH = env_number("PAPER_STARTING_CASH", Decimal("100000"), Decimal, minimum=0)

# Engine
ENGINE_STRATEGY = env.str("ENGINE_STRATEGY", "sma_cross")
ENGINE_STRATEGY_PARAMS = env.dict("ENGINE_STRATEGY_PARAMS", default={"fast": "10", "slow": "30"})
ENGINE_STAKE = env_number("ENGINE_STAKE", Decimal("1000"), Decimal, minimum=0)
ENGINE_ACCOUNT = env.str("ENGINE_ACCOUNT", "paper")
REPLAY_DATA_DIR = env.path("REPLAY_DATA_DIR", default=BASE_DIR / "data" / "sample")
REPLAY_FILES = env.list("REPLAY_FILES", default=[])
REPLAY_SPEED = env_number("REPLAY_SPEED", 120.0, float, minimum=0)
REPLAY_LOOP = env_bool("REPLAY_LOOP", True)
DATA_FEED_STALE_SECONDS = env_number("DATA_FEED_STALE_SECONDS", 300, int, minimum=1)
# A series with no bar this long past its due time is alerted (then paused at the above).
DATA_FEED_ALERT_SECONDS = env_number("DATA_FEED_ALERT_SECONDS", 120, int, minimum=0)
# dev/test only (refused in staging/prod): run the live feeds' clock ENGINE_FEED_TIME_SCALE x
# real time from ENGINE_FEED_TIME_ORIGIN (an ISO time) read at Unix time
# ENGINE_FEED_TIME_ORIGIN_AT, against a fake venue on the same clock (the soak tests).
ENGINE_FEED_TIME_SCALE = env_number("ENGINE_FEED_TIME_SCALE", 1.0, float, minimum=0.001)
ENGINE_FEED_TIME_ORIGIN = env.str("ENGINE_FEED_TIME_ORIGIN", default="")
ENGINE_FEED_TIME_ORIGIN_AT = env_number("ENGINE_FEED_TIME_ORIGIN_AT", 0.0, float, minimum=0)
# A plan's strategy is warmed up on the stored bars from its creation less this many bars.
ENGINE_WARMUP_BARS = env_number("ENGINE_WARMUP_BARS", 1000, int, minimum=0)
# The bookkeeping after decisions (feed status, marks, equity rules) waits this long after
# the last bar with no other bar waiting, so that orders leave first (apps.engine.live).
ENGINE_SETTLE_DELAY_SECONDS = env_number("ENGINE_SETTLE_DELAY_SECONDS", 0.1, float, minimum=0)

# AI signals (apps.ml): the quarterly retrain reads this gap-free OHLCV CSV; empty = the
# scheduled retrain fails with a message saying to set it.
ML_RETRAIN_DATA = env.str("ML_RETRAIN_DATA", default="")
ML_THRESHOLD = env_number("ML_THRESHOLD", 0.5, float, minimum=0)

"""Trading settings: safety rails (ceilings) and the dev replay.

Per-account risk *policy* lives in the database (apps.risk.models.RiskLimit);
these are the hard ceilings no database row can raise. Every value is parsed
strictly: a bad one stops the start with the variable's name.
"""

from decimal import Decimal

from tradebot.env import BASE_DIR, env, env_bool, env_number

RISK_CEILING_MAX_ORDER_NOTIONAL = env_number(
    "RISK_CEILING_MAX_ORDER_NOTIONAL", Decimal("100000"), Decimal, minimum=0
)
RISK_CEILING_MAX_POSITION_NOTIONAL = env_number(
    "RISK_CEILING_MAX_POSITION_NOTIONAL", Decimal("250000"), Decimal, minimum=0
)

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

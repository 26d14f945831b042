"""Trading settings: safety rails (ceilings) and the dev replay.

Per-account risk *policy* lives in the database (apps.risk.models.RiskLimit);
these are the hard ceilings no database row can raise.
"""

from decimal import Decimal

from tradebot.env import BASE_DIR, env

RISK_CEILING_MAX_ORDER_NOTIONAL = Decimal(env.str("RISK_CEILING_MAX_ORDER_NOTIONAL", "100000"))
RISK_CEILING_MAX_POSITION_NOTIONAL = Decimal(
    env.str("RISK_CEILING_MAX_POSITION_NOTIONAL", "250000")
)

# Paper broker
PAPER_FEE_RATE = Decimal(env.str("PAPER_FEE_RATE", "0.001"))
PAPER_SLIPPAGE_BPS = Decimal(env.str("PAPER_SLIPPAGE_BPS", "0"))
PAPER_VOLUME_PARTICIPATION = Decimal(env.str("PAPER_VOLUME_PARTICIPATION", "0.1"))
PAPER_STARTING_CASH = Decimal(env.str("PAPER_STARTING_CASH", "100000"))

# Engine
ENGINE_STRATEGY = env.str("ENGINE_STRATEGY", "sma_cross")
ENGINE_STRATEGY_PARAMS = env.dict("ENGINE_STRATEGY_PARAMS", default={"fast": "10", "slow": "30"})
ENGINE_STAKE = Decimal(env.str("ENGINE_STAKE", "1000"))
ENGINE_ACCOUNT = env.str("ENGINE_ACCOUNT", "paper")
REPLAY_DATA_DIR = env.path("REPLAY_DATA_DIR", default=BASE_DIR / "data" / "sample")
REPLAY_FILES = env.list("REPLAY_FILES", default=[])
REPLAY_SPEED = env.float("REPLAY_SPEED", default=120.0)
REPLAY_LOOP = env.bool("REPLAY_LOOP", default=True)
DATA_FEED_STALE_SECONDS = env.int("DATA_FEED_STALE_SECONDS", default=300)

"""Channels: the Redis channel layer (the in-memory one cannot cross processes)."""

from tradebot.env import env

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [
                env.str("CHANNELS_REDIS_URL", default=None)
                or env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
            ],
            "prefix": f"tradebot-{env.str('ENVIRONMENT', default='dev')}",
        },
    }
}

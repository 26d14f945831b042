"""Channels: the Redis pub/sub channel layer (the in-memory one cannot cross processes).

Pub/sub publishes a group message once per server process and fans out in memory: with
200 panel sockets the list-based RedisChannelLayer's per-member queue gave a 147 ms p99,
pub/sub 82-94 ms (bench/ws_fanout.py). Nothing here needs messages kept for a consumer
that is not connected: a reconnecting panel re-reads its snapshot.
"""

from typing import Any

from tradebot.env import env

CHANNEL_LAYERS: dict[str, dict[str, Any]] = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {
            "hosts": [
                env.str("CHANNELS_REDIS_URL", default=None)
                or env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
            ],
            "prefix": f"tradebot-{env.str('ENVIRONMENT', default='dev')}",
        },
    }
}

"""InfluxDB: trading time series (apps/core/influx.py). Off while INFLUXDB_URL is empty."""

from tradebot.env import env, env_number

INFLUXDB_URL = env.str("INFLUXDB_URL", default="").rstrip("/")
INFLUXDB_TOKEN = env.str("INFLUXDB_TOKEN", default="")
INFLUXDB_ORG = env.str("INFLUXDB_ORG", default="trading")
INFLUXDB_BUCKET = env.str("INFLUXDB_BUCKET", default="trading")
# The writer: points per write, seconds a partial batch may wait, points buffered before
# new ones are dropped (and counted), and the HTTP timeout of one write.
INFLUXDB_BATCH_SIZE = env_number("INFLUXDB_BATCH_SIZE", 500, int, minimum=1)
INFLUXDB_FLUSH_INTERVAL = env_number("INFLUXDB_FLUSH_INTERVAL", 1.0, float, minimum=0.01)
INFLUXDB_BUFFER_POINTS = env_number("INFLUXDB_BUFFER_POINTS", 10_000, int, minimum=1)
INFLUXDB_TIMEOUT_MS = env_number("INFLUXDB_TIMEOUT_MS", 2_000, int, minimum=1)

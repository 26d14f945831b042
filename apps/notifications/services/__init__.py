"""Notification writes, one module per sub-domain: notifications (notify()), delivery,
channel_state (rate limits, channels disabled by refused credentials), alerts (raise,
resolve), alertmanager (the webhook's SMS forwarding), watchdog (the Alertmanager
Watchdog check).

Shape of a notification's life:

1. ``notify(...)`` stores a Notification and one Delivery per channel of its severity
   (table 5.1: info none, warning Telegram, error + e-mail, critical + SMS), in the
   caller's transaction; a repeat of the same ``dedup_key`` inside the dedup window only
   bumps the first one's ``occurrences``. A channel without settings gets a "skipped"
   delivery saying what to set.
2. After commit, each pending delivery is handed to the Celery task
   ``notifications.deliver`` (queue "default"). If the broker is unreachable the delivery
   stays "pending" and ``notifications.sweep`` (beat, every minute) hands it over later.
   Nothing here ever raises into the caller because a channel or the broker failed.
3. ``delivery_send`` claims the delivery, checks the channel (configured, not disabled,
   under its rate limit) and sends it. Temporary failures are retried with exponential
   backoff; bad credentials disable the channel (reported once); anything else fails it.
"""

"""Connectivity, reconciliation and the order outbox: keeping our books equal to the broker's.

- ``reconcile_account`` is the one reconciliation path (start-up, schedule, command,
  panel button, after a reconnect). It first settles what it can: fills are
  re-requested and applied (exactly once, by trade id), in-flight orders are asked
  about (an order whose ack was lost is ACCEPTED, one the broker never received is
  CANCELED; none is ever resent). What still differs is a ``Discrepancy``: stored
  with both figures, trading PAUSED, an alert raised, an incident opened.
- ``broker_sync`` (every few seconds, on the execution queue: the same single
  process that sends) heartbeats, reconnects with backoff and jitter, alerts after
  2 minutes and PAUSES after the grace period; after a reconnect it reconciles before
  trading resumes.
- (the outbox sweep, ``apps.trading.services.outbox``, re-enqueues orders whose enqueue was lost (Redis down when
  their transaction committed) and refuses stale ones."""

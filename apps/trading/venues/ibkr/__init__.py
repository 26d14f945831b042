"""Interactive Brokers through ib_async, to a running TWS or IB Gateway.

The adapter runs inside a long-lived single-threaded worker (Celery, pool solo) and
is called synchronously. It keeps ONE socket per process and per (host, port,
client id) — TWS allows one connection per client id — and reconnects lazily: the
first call after a drop or a refusal tries again, and a call that cannot reach TWS
raises ``VenueTemporaryError``. Every ``IbkrVenue`` of the process with the same host,
port and client id shares that session.

The session owns a private asyncio loop. ib_async is asynchronous underneath; every
call here runs one coroutine on that loop to completion (with a timeout), so socket
messages are processed only while a call runs. That is why nothing is read from
ib_async's caches: every query asks TWS again (open orders, completed orders,
executions, positions, account values), so a message lost during a disconnect or a
TWS "data lost" restore (1101) never leaves a stale answer behind.

Our client_order_id travels as the IB order's ``orderRef``: it comes back in open
orders, completed orders and executions, so ``order_status`` finds an order whose ack
was lost. The broker order id we hand back is IB's ``permId`` (unique per account and
stable across client sessions, unlike the per-client ``orderId``).

Errors: an order refused by IB (201, 202, 103, 110, 404, 434, ...) raises
``VenueRejected`` with IB's code and message; an order IB keeps working despite the
error (404 "held while we locate shares", treated as a warning by ib_async) is
cancelled first, so a REJECTED order is never left working. 502/504, timeouts and
dropped sockets raise ``VenueTemporaryError`` (outcome unknown). 1100 (TWS lost IB)
makes ``connection_state`` DISCONNECTED and refuses to send orders until 1101/1102.
Messages the decoder cannot parse are logged by ib_async, counted in
``broker_malformed_messages_total{broker="ibkr"}``, and skipped: ib_async's decoder
catches every exception per message, and its socket handler's exceptions go to an
event we listen to; neither can end the process.

Equities only: our symbol is the ticker, routed SMART in the instrument's quote
currency. Crypto is refused (``VenueRejected``, code ``unsupported-asset-class``).
The package, by seam:

- ``session``: the one ib_async connection per (host, port, client id) of a process,
  its private event loop, what TWS reports outside any request (1100/1101/1102, system
  errors, per-order errors, completed orders' status) and the malformed-message count;
- ``errors``: TWS's message codes and the error class each maps to;
- ``mapping``: IB's values onto ours (order status, IB's floats as ``Decimal``, the
  ``permId`` of a trade);
- ``adapter``: ``IbkrVenue`` itself: connecting and the account check, orders and
  contracts, cancels, executions with their commissions, positions and balances.
"""

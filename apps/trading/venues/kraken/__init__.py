"""Kraken spot through ccxt (sync): the ``Venue`` protocol over Kraken's REST API.

ccxt does the transport, the request signing, the nonces, the market and currency
tables (Kraken's XXBT/XBT/ZUSD aliases) and the first sorting of errors into its
exception classes. This adapter adds what a trading system needs on top:

- **Our ids at Kraken.** Every order carries our client order id as Kraken's
  ``cl_ord_id``, so an order whose ack was lost is found again by our id (open
  orders, then closed orders, then by Kraken's txid when we have it). Kraken accepts a
  ``cl_ord_id`` in three shapes only (a long UUID, 32 hex digits, or free text of at
  most 18 characters) and our ids are ``tb-<32 hex>`` and ``tb-kill-<32 hex>``: the
  first goes as a long UUID, the second as the bare 32 hex digits, so the mapping is
  exact both ways. Kraken checks that id only among OPEN orders; our database is
  what prevents a second send.
- **Exact numbers.** Quantities, prices and fees are read from Kraken's own strings
  into ``Decimal`` (never through ccxt's floats), and an order whose quantity or
  price has more decimals than Kraken's pair allows is refused before sending
  (ccxt would silently truncate it, and the order at Kraken would differ from ours).
- **Errors by what the caller must do** (``VenueRejected`` / ``VenueTemporaryError`` /
  ``VenueConfigurationError``), always with Kraken's own message; a response that is
  not a well-formed Kraken envelope is counted in
  ``broker_malformed_messages_total{broker="kraken"}`` and raised as temporary, never
  as a ``KeyError`` from deep inside the parsing.
- **The dead-man switch.** ``connect`` arms Kraken's ``CancelAllOrdersAfter`` (60 s by
  default), ``heartbeat`` refreshes it every 15-30 s, ``close`` disarms it. If the
  process dies or loses the network, Kraken cancels every open order by itself.
  Kraken has ONE such timer per API key: an instance built only to read (a
  reconciliation run, a runbook) must pass ``dead_man_timeout_seconds=0`` so that it
  neither arms nor, on close, disarms the trading process's timer.

Spot only: ``reduce_only`` is not sent (Kraken honours it on margin orders only; a
spot sell can never exceed the balance anyway), so a kill-switch closing order is
never refused for carrying it.
The package, by seam:

- ``ids``: our client order ids <-> Kraken's ``cl_ord_id`` (exact both ways);
- ``errors``: Kraken's error strings and the tables that sort them by what the caller
  must do;
- ``mapping``: symbols (ours <-> ccxt's), Kraken's order status on ours, and the readers
  that parse Kraken's strings into ``Decimal`` (a missing field is ``_Malformed``);
- ``client``: ccxt's Kraken with the envelope check it lacks, and the api_url check;
- ``adapter``: ``KrakenVenue`` itself: the session and its dead-man switch, orders,
  fills, balances, the precision check before sending, and the error translation.
"""

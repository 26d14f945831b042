"""Our client order ids <-> Kraken's ``cl_ord_id``, exact both ways (see the package docstring)."""

from __future__ import annotations

import re
import uuid

# Our client order ids (apps.trading.services.common.new_client_order_id and the kill switch's).
ORDER_ID_PREFIX = "tb-"
KILL_ORDER_ID_PREFIX = "tb-kill-"
_OUR_ID = re.compile(r"tb-([0-9a-f]{32})")
_OUR_KILL_ID = re.compile(r"tb-kill-([0-9a-f]{32})")
_LONG_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_SHORT_UUID = re.compile(r"[0-9a-fA-F]{32}")
_FREE_TEXT = re.compile(r"[\x21-\x7e]{1,18}")


def kraken_client_order_id(client_order_id: str) -> str:
    """Our client order id as a Kraken ``cl_ord_id`` (one of Kraken's three formats).

    ``tb-<hex>`` -> the long UUID of ``<hex>``; ``tb-kill-<hex>`` -> the 32 hex digits;
    any other id of at most 18 printable ASCII characters goes as free text.

    Raises ``ValueError`` for an id Kraken would refuse.
    """
    if match := _OUR_KILL_ID.fullmatch(client_order_id):
        return match.group(1)
    if match := _OUR_ID.fullmatch(client_order_id):
        return str(uuid.UUID(hex=match.group(1)))
    if _FREE_TEXT.fullmatch(client_order_id):
        return client_order_id
    raise ValueError(
        f"client order id {client_order_id!r} fits none of Kraken's cl_ord_id formats "
        "(tb-<32 hex>, tb-kill-<32 hex>, or at most 18 printable ASCII characters)"
    )


def our_client_order_id(cl_ord_id: str | None) -> str | None:
    """The inverse of ``kraken_client_order_id``; None when Kraken has no client id."""
    if not cl_ord_id:
        return None
    if _LONG_UUID.fullmatch(cl_ord_id):
        return ORDER_ID_PREFIX + cl_ord_id.replace("-", "").lower()
    if _SHORT_UUID.fullmatch(cl_ord_id):
        return KILL_ORDER_ID_PREFIX + cl_ord_id.lower()
    return cl_ord_id

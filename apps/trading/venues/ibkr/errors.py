"""TWS's message codes, and the ``VenueError`` an IB error code becomes."""

from __future__ import annotations

from apps.model.venues import VenueError, VenueRejected, VenueTemporaryError

# TWS system messages (reqId -1).
CONNECTIVITY_LOST = 1100
RESTORED_DATA_LOST = 1101
RESTORED_DATA_KEPT = 1102
# "Couldn't connect to TWS" / "Not connected": the outcome of a request is unknown.
TEMPORARY_CODES = frozenset({502, 504})
# Messages about an order that do not refuse it: 202 is IB's confirmation of a cancel
# (a refusal only while we wait for the ack), 399 "order will be placed at the open",
# 2100-2199 warnings ("attribute ignored"), 10167/10311/10349 notices.
NOTICE_CODES = frozenset({399, 10167, 10311, 10349, *range(2100, 2200)})
ORDER_CANCELLED = 202


def _error_class(code: int, message: str) -> VenueError:
    text = f"IBKR {code}: {message}"
    if code in TEMPORARY_CODES or code == CONNECTIVITY_LOST:
        return VenueTemporaryError(text)
    return VenueRejected(text, code=str(code))

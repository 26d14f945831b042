"""Trading writes, one module per sub-domain: decisions, orders (the send), fills, marking,
the kill switch, the observation book. Lock order everywhere: SystemState (share) -> Order
-> Position -> Account."""

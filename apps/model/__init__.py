"""Pure values: money, instruments, orders and their state table, fills, accounting, paper
matching, bars, venue reports, errors and time. No Django, no I/O: everything above builds on it."""

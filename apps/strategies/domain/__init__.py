"""Pure strategy core: signals, the strategy interface, sizing. No Django imports."""

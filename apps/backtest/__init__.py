"""The backtest loop and the backtest command."""

"""Automated strategies: one interface (base), the built-in types (builtin), the backtester
(backtest) and the live runner (runner). ADR 0008."""

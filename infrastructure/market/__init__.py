"""Market data adapters: Bybit, candle files, and the synthetic market."""

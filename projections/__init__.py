"""tradewatch projections layer."""

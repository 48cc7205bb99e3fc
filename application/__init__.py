"""tradewatch application layer."""

"""tradewatch ui layer."""

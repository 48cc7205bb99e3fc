"""tradewatch domain layer."""

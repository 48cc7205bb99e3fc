"""tradewatch infrastructure layer."""

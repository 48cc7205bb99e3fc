"""Fake external services for tests (a Bybit V5 server), driven through the real clients."""

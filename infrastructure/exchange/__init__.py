"""Exchange adapters: the ``Exchange`` port on Bybit V5 (REST truth, WebSocket hints)."""

"""Alert sinks: durable JetStream consumers that deliver alerts to people (Telegram, e-mail).

Each acknowledges an alert only after it was delivered and recorded as delivered, so an
outage of the sink loses nothing and a restart sends nothing twice (``docs/alerts.md``,
"Sinks").
"""

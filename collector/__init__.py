"""The collector: the facility server's process that receives what the reader nodes send.

Modules (one idea each):
    config    the collector's settings file
    db        the store's connection (SQLite WAL, or PostgreSQL) and its schema migrations
    keystore  the key-encryption key and field encryption at rest
    registry  provisioned devices, their secrets (encrypted) and derived keys
    ingest    MQTT in: open, verify, de-duplicate, store, then acknowledge
    fleet     presence, uptime, equipment inventory
    metrics   Prometheus metrics
    stats     period statistics over the store (reads, insurance outcomes, rejects, volume, uptime)
    report    the monthly Đề án 06 report for the health department (xlsx, csv, md)

It never imports ``sim`` or ``agent``.
"""

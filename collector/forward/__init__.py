"""Forwarders: what the collector does with a stored read outside itself.

insurance   the answer of the BHXH gateway (KQNhanLichSuKCB2024) mapped to a Result for the counter
bhxh        the gateway's HTTP client: token cache, officer identity, timeouts, retries
"""

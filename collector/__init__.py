"""Collector: ingest protocol-v1 envelopes from MQTT, validate, store, serve."""

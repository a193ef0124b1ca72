"""Ingest: view events read, validated and written as the run's tables; the synthetic catalogue."""

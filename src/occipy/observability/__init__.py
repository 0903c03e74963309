"""Observability: Prometheus metrics (metrics.py); importable from every layer."""

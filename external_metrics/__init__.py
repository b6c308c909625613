"""Serving the signals: External Metrics API (aggregated, TLS), KEDA external scaler, JSON API.

Not built yet (issue "Serving the signals"); servers here only read the recommendation store and
never compute signals.
"""

"""Clients of external systems: one module per system, each with a narrow Protocol, its own
error tree, and the only retry/back-off of that system (STYLE.md, lesson 2).

- :mod:`autoscaler.clients.prometheus`: the Prometheus HTTP API (instant and range queries).
- :mod:`autoscaler.clients.fake_prometheus`: a data fake of it for tests (STYLE.md, lesson 5).
"""

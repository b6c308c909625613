"""Clients of external systems: one module per system, each with a narrow Protocol, its own
error tree, and the only retry/back-off of that system (STYLE.md, lesson 2).

- :mod:`autoscaler.clients.prometheus`: the Prometheus HTTP API (instant and range queries).
- :mod:`autoscaler.clients.fake_prometheus`: a data fake of it for tests (STYLE.md, lesson 5).
- :mod:`autoscaler.clients.kube`: the Kubernetes API (pod watch, HPAs and Events, reviews, Jobs,
  nodes, Leases).

May import: the core (``replica_states``, with which the pod watch classifies pods, and
``current_autoscaler``, what the HPA reader returns), ``autoscaler.errors`` and the value types its
callers define for what they ask (``external_metrics.access`` for the reviews). Never the live loop,
the policies, the simulator, the offline tools or the CLI: a client is handed to them, not the
other way round, and whoever uses one receives it from the composition root
(``autoscaler/cli/serve_assembly.py``) behind a protocol (``tests/test_layout.py``).
"""

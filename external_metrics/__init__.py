"""Serving the signals: External Metrics API (aggregated, TLS), KEDA external scaler, JSON API.

Servers here only read the :class:`~autoscaler.live.store.RecommendationStore` and never compute
signals. ``app`` is the HTTPS application (``metrics_api`` for ``external.metrics.k8s.io``,
``json_api`` for ``/v1``, ``auth`` for delegated authn/authz), ``keda`` the gRPC scaler,
``health`` the plain-HTTP ``/metrics`` and probes, ``service`` runs them with the control loop.
``access`` holds the value types of delegated auth and the ``Reviewer`` protocol the Kubernetes
client implements.

May import: the store (``autoscaler.live.store``; ``service`` runs ``autoscaler.live.loop``), the
core, ``autoscaler.config`` and ``autoscaler.errors``; never ``autoscaler.clients`` (what talks to
Kubernetes or Prometheus is passed in by the composition root, ``autoscaler/cli/serve_assembly.py``)
and never the simulator (``tests/test_layout.py``). It does not build the service: ``llm-autoscaler
serve`` does.
"""

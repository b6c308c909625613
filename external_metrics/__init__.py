"""Serving the signals: External Metrics API (aggregated, TLS), KEDA external scaler, JSON API.

Servers here only read the :class:`~autoscaler.live.store.RecommendationStore` and never compute
signals. ``app`` is the HTTPS application (``metrics_api`` for ``external.metrics.k8s.io``,
``json_api`` for ``/v1``, ``auth`` for delegated authn/authz), ``keda`` the gRPC scaler,
``health`` the plain-HTTP ``/metrics`` and probes, ``service`` runs them with the control loop and
``assemble`` builds ``serve`` from a config.
"""

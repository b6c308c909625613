"""Event-driven fleet simulator used to evaluate policies offline.

``replica`` models one vLLM-like model server (continuous batching, chunked prefill, KV-limited
admission, decode stretches advanced in closed form); ``fleet`` the nodes, replica lifecycle,
scheduler and router; ``observation`` what Prometheus and the Kubernetes API would show;
``engine`` the event loop that ties them to a policy and the HPA emulation; ``oracle`` the
clairvoyant plan and the work bound; ``runner`` seeds, sweeps and the JSON contract.
``pd_*`` and ``disaggregated`` are the same for prefill and decode pools (docs/disaggregation.md).

May import: the core, the policies it evaluates, ``autoscaler.perf``, ``autoscaler.hpa``,
``autoscaler.traces``, ``autoscaler.engines`` (to export what engines export) and ``forecasting``.
Never a client, the live loop or the CLI (``tests/test_layout.py``).
"""

"""The fleet simulators used to evaluate policies offline: event-driven and fluid.

``lifecycle`` is the one pod lifecycle both use (node pool, scheduler, start-up phases, image
caches, scale-down rank). ``replica`` models one vLLM-like model server (continuous batching,
chunked prefill, KV-limited admission, decode stretches advanced in closed form); ``fleet`` the
lifecycle's pods with a replica each, draining and the router; ``observation`` what Prometheus
and the Kubernetes API would show; ``engine`` the event loop that ties them to a policy and the
HPA emulation; ``oracle`` the clairvoyant plan and the work bound; ``runner`` seeds, sweeps and
the JSON contract. ``pd_*`` and ``disaggregated`` are the same for prefill and decode pools
(docs/disaggregation.md). ``fluid*`` is the rate-level simulator for multi-day traces
(``fluid_model`` the tabulated replica, ``fluid_dynamics`` the ready fleet over an interval,
``fluid_fleet`` the lifecycle's pods without request state, ``fluid`` the run; docs/simulator.md,
"Fluid mode").

May import: the core, the policies it evaluates, ``autoscaler.perf``, ``autoscaler.hpa``,
``autoscaler.traces``, ``autoscaler.engines`` (to export what engines export) and ``forecasting``.
Never a client, the live loop or the CLI (``tests/test_layout.py``).
"""

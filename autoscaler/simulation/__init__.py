"""Event-driven fleet simulator used to evaluate policies offline.

``replica`` models one vLLM-like model server (continuous batching, chunked prefill, KV-limited
admission, decode stretches advanced in closed form); ``fleet`` the nodes, replica lifecycle,
scheduler and router; ``observation`` what Prometheus and the Kubernetes API would show;
``engine`` the event loop that ties them to a policy and the HPA emulation; ``oracle`` the
clairvoyant plan and the work bound; ``runner`` seeds, sweeps and the JSON contract.
"""

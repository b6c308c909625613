"""Performance profiles of one model replica: prefill and decode cost, KV capacity.

``model`` holds the cost formulas; ``profiles`` the coefficients fitted to the Splitwise
measurements (``perf/splitwise_perf_model.csv``) and the registry keyed by (model, GPU, TP);
``fitting`` re-derives them from the CSV (used by the tests that check the fit).

May import: the core, ``autoscaler.errors`` and ``autoscaler.shared_data`` (the measurements).
Never a client, the simulator, a policy or the live loop (``tests/test_layout.py``).
"""

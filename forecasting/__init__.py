"""Demand forecasters behind one estimator API (``fit``, ``update``, ``predict``).

Must not import Kubernetes, Prometheus or aiohttp code: forecasters are pure numpy/scikit-learn
so that the live loop, the simulator and the backtests run the same models.

May import: numpy, scikit-learn and the standard library; nothing of ``autoscaler``, ``cache`` or
``external_metrics`` (``tests/test_layout.py``).
"""

"""Demand forecasters behind one estimator API (``fit``, ``update``, ``predict``).

Must not import Kubernetes, Prometheus or aiohttp code: forecasters are pure numpy/scikit-learn
so that the live loop, the simulator and the backtests run the same models.
"""

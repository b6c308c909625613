"""Offline tools: what a person runs on a history or a trace, not what serves a cluster.

``report/`` turns a workload's history (a trace file or a Prometheus range) into a capacity
planner's report: backtest, replay, recommended settings, HPA and KEDA manifests, pages.
``forecast_eval`` backtests every forecaster on a trace's demand; ``series`` turns traces into
the demand series both read; ``plotting`` and ``tables`` draw and print the results of the CLI,
``benchmarks/`` and ``notebooks/``.

May import: the core, the policies and what they stand on (engines, perf, hpa), ``forecasting``,
the simulator (a report replays its history there), the traces, ``autoscaler.config``,
``autoscaler.errors`` and the Prometheus client's protocol (``report/history.py`` reads a range).
Never the live loop (``autoscaler.live``): the piece a report shares with it, the range queries
the loop's start-up backfill runs, is passed in by the caller (``tests/test_layout.py``).
"""

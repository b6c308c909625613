"""``llm-autoscaler report``: a capacity planner's answer from a workload's history.

One pass, each step a module whose name says what it holds:

1. :mod:`~autoscaler.offline.report.history` gathers the history: a trace file (request-level, or
   ServeGen rate windows) or a workload's Prometheus range (through the live loop's backfill
   queries, which the CLI passes in), as token-work demand per interval plus what the simulator
   replays;
2. :mod:`~autoscaler.offline.report.accuracy` backtests the policy's forecaster on that demand
   (:func:`forecasting.backtest.cross_validation`) and scores it at every horizon up to twice
   the cold-start lead time;
3. :mod:`~autoscaler.offline.report.replay` replays the history through ``forecast@SETTING`` at
   several head-room settings and through the baselines (the ``simulate`` runner, fluid mode for
   rate histories);
4. :mod:`~autoscaler.offline.report.recommend` (pure) turns the evidence into settings: head-room,
   min/max replicas, target values, cold-start and prefetch advice;
   :mod:`~autoscaler.offline.report.engine_settings` compares the engine's token budgets on a
   request history with the fleet oracle and recommends one;
5. :mod:`~autoscaler.offline.report.manifests` renders the HPA and KEDA ScaledObject for those
   settings from the same builders and behaviour as ``deploy/``;
6. :mod:`~autoscaler.offline.report.figures` draws the plots (PNG),
   :mod:`~autoscaler.offline.report.html_page` and
   :mod:`~autoscaler.offline.report.markdown_summary` lay out the same facts, and
   :mod:`~autoscaler.offline.report.build` runs the steps, collects what they found in a
   :class:`~autoscaler.offline.report.contents.Report` and writes the directory.

Nothing here decides anything the live service decides differently: the policy, the forecaster,
the simulator and the HPA behaviour are the ones ``serve`` and ``simulate`` use.

Modules are imported by name (``from autoscaler.offline.report import build``); this file imports
none of them, so reading the pure ones does not pull in the simulator or matplotlib.
"""

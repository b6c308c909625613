"""``llm-autoscaler report``: a capacity planner's answer from a workload's history.

One pass, each step a module whose name says what it holds:

1. :mod:`~autoscaler.report.history` gathers the history: a trace file (request-level, or
   ServeGen rate windows) or a workload's Prometheus range (through
   :func:`autoscaler.live.collection.collect_history`), as token-work demand per interval plus what
   the simulator replays;
2. :mod:`~autoscaler.report.accuracy` backtests the policy's forecaster on that demand
   (:func:`forecasting.backtest.cross_validation`) and scores it at every horizon up to twice
   the cold-start lead time;
3. :mod:`~autoscaler.report.replay` replays the history through ``forecast@SETTING`` at several
   head-room settings and through the baselines (the ``simulate`` runner, fluid mode for rate
   histories);
4. :mod:`~autoscaler.report.recommend` (pure) turns the evidence into settings: head-room,
   min/max replicas, target values, cold-start and prefetch advice;
   :mod:`~autoscaler.report.engine_settings` compares the engine's token budgets on a request
   history with the fleet oracle and recommends one;
5. :mod:`~autoscaler.report.manifests` renders the HPA and KEDA ScaledObject for those settings
   from the same builders and behaviour as ``deploy/``;
6. :mod:`~autoscaler.report.figures` draws the plots (PNG), :mod:`~autoscaler.report.html_page`
   and :mod:`~autoscaler.report.markdown_summary` lay out the same facts, and
   :mod:`~autoscaler.report.build` runs the steps, collects what they found in a
   :class:`~autoscaler.report.contents.Report` and writes the directory.

Nothing here decides anything the live service decides differently: the policy, the forecaster,
the simulator and the HPA behaviour are the ones ``serve`` and ``simulate`` use.

Modules are imported by name (``from autoscaler.report import build``); this file imports none
of them, so reading the pure ones does not pull in the simulator or matplotlib.
"""

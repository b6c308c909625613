"""The decision core: what a policy reads, what it returns, and how runs are scored.

Pure: no I/O, no clock, no global state (``replica_states`` logs a warning when it skips a
malformed pod, nothing more). The live loop, the simulator, the report and the
benchmarks all build the same :class:`~autoscaler.core.signals.SignalSnapshot` and read the same
:class:`~autoscaler.core.recommendation.Recommendation`, so what the benchmarks measure is what
production runs; keeping this room free of everything else is what makes that true.

May import: the standard library and numpy, and other modules of ``autoscaler.core``. Nothing
else of ours (``autoscaler`` outside ``core``, ``external_metrics``, ``cache``, ``forecasting``):
every other room may import this one, so an import out of it would be a cycle waiting to happen
(``tests/test_layout.py`` enforces it).
"""

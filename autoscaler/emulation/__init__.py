"""An emulated model-server fleet: a trace replayed through the simulator's replica model in
(scaled) wall time, served as Prometheus scrape targets in an engine's own /metrics format.

Layers: :mod:`.stepper` (the incremental replay, no I/O), :mod:`.exposition` (metric families
built at scrape time, with :mod:`.families` and :mod:`.side_exporters`), :mod:`.server` (aiohttp
app). ``llm-autoscaler emulate`` wires them.

May import: the simulator's replica model, the engines (their metric names), ``perf``,
``traces`` and ``autoscaler.errors``. Never the live loop or a client: it stands in for the
engines the live loop scrapes.
"""

from autoscaler.emulation.exposition import ENGINES, VllmV1Collector, engine_names
from autoscaler.emulation.server import (
    EMULATOR,
    SETTINGS,
    EmulatorSettings,
    SimClock,
    create_app,
    labels_for,
)
from autoscaler.emulation.stepper import Emulator, ReplicaMetrics, ReplicaSample

__all__ = [
    "EMULATOR",
    "ENGINES",
    "SETTINGS",
    "Emulator",
    "EmulatorSettings",
    "ReplicaMetrics",
    "ReplicaSample",
    "SimClock",
    "VllmV1Collector",
    "create_app",
    "engine_names",
    "labels_for",
]

"""What one report holds: the :class:`Report` that :mod:`~autoscaler.offline.report.build` fills and
:mod:`~autoscaler.offline.report.document` reads.

It has a module of its own so the two need not import each other: ``build`` runs the steps and
writes files, ``document`` turns a finished report into sections, and both depend only on this
record of what was found.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from autoscaler.offline.report.accuracy import Accuracy
from autoscaler.offline.report.disaggregation import Disaggregation
from autoscaler.offline.report.engine_settings import EngineSettings
from autoscaler.offline.report.history import History
from autoscaler.offline.report.recommend import CurvePoint, Settings
from autoscaler.simulation.engine import RunOutput
from autoscaler.simulation.runner import RunRequest


@dataclass
class Report:
    """Everything the pages show; :meth:`to_json` is ``report.json``."""

    history: History
    request: RunRequest
    accuracy: Accuracy | None
    accuracy_note: str | None
    simulation: Mapping[str, object]
    points: list[CurvePoint]
    settings: Settings
    hpa_yaml: str
    keda_yaml: str
    timelines: Mapping[str, RunOutput] | None
    timings_s: dict[str, float] = field(default_factory=dict)
    engine_settings: EngineSettings | None = None
    engine_settings_note: str | None = None
    """Why there is no engine-settings table (a rate history), when there is none."""
    disaggregation: Disaggregation | None = None
    """Aggregated vs disaggregated (``report --disaggregation``), when asked and possible."""
    disaggregation_note: str | None = None
    """Why it was asked for and is not there (a rate history)."""

    def to_json(self) -> dict[str, object]:
        h = self.history
        return {
            "workload": h.workload,
            "source": dict(h.source),
            "series": {
                "kind": "token_work",
                "interval_s": h.interval_s,
                "intervals": int(h.demand.size),
                "missing": int(sum(1 for v in h.demand.tolist() if not math.isfinite(v))),
                "mode": h.mode,
            },
            "accuracy": None if self.accuracy is None else self.accuracy.to_json(),
            "accuracy_note": self.accuracy_note,
            "simulation": dict(self.simulation),
            "settings": self.settings.to_json(),
            "engine_settings": (
                None if self.engine_settings is None else self.engine_settings.to_json()
            ),
            "disaggregation": (
                None if self.disaggregation is None else self.disaggregation.to_json()
            ),
            "engine_settings_note": self.engine_settings_note,
            "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
        }

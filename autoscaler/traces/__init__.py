"""Request traces: readers for the public formats, rate scaling, and the synthetic default.

Layout: ``records`` (the :class:`Trace` columns), one module per file format (``azure``,
``burstgpt``, ``mooncake``, ``servegen``) behind ``readers.read_trace``, ``scaling`` for
``--rate-scale``, ``synthetic`` for the embedded demo workload and ``fitting`` for how its
constants were derived from the shared traces. This file only re-exports the public names.

May import: ``perf`` (a request's token work), ``autoscaler.errors`` and
``autoscaler.shared_data``. Never the live loop or a client: traces are files.
"""

from autoscaler.traces.readers import FORMATS, detect_format, read_trace
from autoscaler.traces.records import Trace, from_columns
from autoscaler.traces.scaling import scale_rate
from autoscaler.traces.servegen import RateWindows, expand_to_requests, read_rate_windows
from autoscaler.traces.synthetic import (
    DEFAULT_WORKLOAD,
    LengthMixture,
    SyntheticWorkload,
    generate,
)

__all__ = [
    "DEFAULT_WORKLOAD",
    "FORMATS",
    "LengthMixture",
    "RateWindows",
    "SyntheticWorkload",
    "Trace",
    "detect_format",
    "expand_to_requests",
    "from_columns",
    "generate",
    "read_rate_windows",
    "read_trace",
    "scale_rate",
]

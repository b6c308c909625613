"""The names of the external metrics we publish: the wire contract with the HPA, KEDA and /v1.

An HPA manifest, a KEDA ScaledObject or a dashboard names these strings, so they are defined once
here, beside the :class:`~autoscaler.core.recommendation.PublishedMetric` that carries them, and
not in the policy that happens to compute them: the cache prefetcher and the serving side read
them without importing the policies. All three are in replica units (a replica's capacity is 1),
which is why KEDA can pass them through with target 1.
"""

from __future__ import annotations

from typing import Final

DESIRED_METRIC: Final = "llm_desired_replicas"
"""The replicas the policy wants; the HPA targets it at AverageValue 1 (one per replica)."""
LOAD_METRIC: Final = "llm_load_replicas"
"""Current demand in replicas' worth of capacity."""
FORECAST_METRIC: Final = "llm_forecast_load_replicas"
"""The forecast demand quantile over the lead time, in replicas' worth of capacity."""

PUBLISHED_METRICS: Final[tuple[str, ...]] = (DESIRED_METRIC, LOAD_METRIC, FORECAST_METRIC)
"""Every metric the External Metrics API, KEDA's scaler and /v1 serve, in this order."""

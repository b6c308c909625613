"""``forecast``: our policy. Token-work demand, forecast over the lead time, learned capacity.

Desired replicas = max of these candidates (each keeps its reason; the winner is reported):

* ``forecast``: token-work demand over the lead time (observed time-to-ready, else the context's
  default) - the forecaster's point path times a band calibrated on the policy's own recent
  forecast errors (:class:`RelativeBand`) at a quantile set by the SLO-attainment target
  (:func:`band_quantile_for`), at least ``min_headroom`` - divided by the learned per-replica
  capacity, plus the replicas whose queue outlasts the lead time;
* ``latency``: when observed TTFT p90 or queue time p90 (its mean per request on an engine
  without histograms: Triton) exceed their budgets, the ready count scaled by the worst ratio
  (capped at 1.5x per tick);
* ``saturation``: KV-cache usage above 90% or more than ``max_num_seqs`` waiting per replica
  adds one step of 10% (at least one replica); so does GPU memory pressure where the engine's
  GPU memory is not one exported KV pool (``PolicyContext.gpu_memory_guard``: TGI, Triton): the
  fullest replica's GPU memory (dcgm-exporter) at or above ``gpu_memory_pressure`` while the
  queue builds (at least one request waiting per ready replica, and growing over the rate
  window). A full GPU with an empty or draining queue serves what it is sent; and a request or
  two waiting for the next prefill step is how every engine's queue looks under load, which on
  an engine whose memory is full from the start (TGI) would add a replica every tick.

Demand is counted in token work (prefill tokens + weighted decode tokens) and estimated as the
work served plus the growth of the work in the system (queued, and running requests' remaining
decode), because completions saturate under overload and overshoot while a backlog drains.
Where an inference gateway fronts the fleet (``WorkloadConfig.gateway``, snapshot fields
``gateway_*``), demand is the token work *arriving* instead: the requests the gateway let through
plus the growth of its flow-control backlog, at its mean request size; the backlog itself counts
as queue (spread over the ready replicas' queues, where it would have waited without flow
control, and in the saturation guard). The ``forecast`` candidate's detail says which demand
source it used.
Minutes under overload are censored: they neither calibrate the band nor teach capacity. The
desired count is the fleet the demand needs, so replicas pending or starting are capacity on the
way by construction. Past the pending timeout (``PolicyContext.pending_timeout_s``, e.g. no free
GPU) they are reported - the winning reason says capacity is unavailable, and the loop posts an
Event - but never added to the desired count: replacements for pods the cluster cannot place
cannot be placed either, each round of them would time out in turn, and the fleet would climb to
its maximum and never scale down (12 stuck pods at a load of one replica took it 3 -> 20). A
scale-down below the current count still happens when the load falls, and the ReplicaSet then
removes unscheduled pods first. Stale or missing data -> hold (fail static).

Capacity is learned online (:class:`CapacityLearner`) from (load per replica, SLO attainment)
pairs observed while the fleet and its load were steady (the share of requests within the
budgets, read from the TTFT and per-request TPOT buckets; p90 latency ratios where an engine lacks
them): an isotonic (scipy) fit against load says where the misses reach what the target
allows, and the capacity rises
above the engine profile's seed (``PolicyContext.replica_token_capacity``) only as far as loads
observed with latency comfortably within budget allow. ``setting`` scales the learned capacity
(default 1.0: below 1 buys head-room, above 1 trusts a replica with more). With a performance
profile (``PolicyContext.profile``) the learned capacity is scaled by the live request mix's
capacity over the seed mix's (:class:`~autoscaler.policies.forecast.mix.MixScale`), so it follows
a move to long prompts or long answers at once.

The forecaster is built in one place, :func:`default_forecaster`. Modules: ``demand``, ``band``,
``capacity``, ``mix``, ``decision`` (one workload), ``batch`` (every workload's forecast on arrays).

May import: what :mod:`autoscaler.policies` may.
"""

from autoscaler.core.wire_names import DESIRED_METRIC, FORECAST_METRIC, LOAD_METRIC
from autoscaler.policies.forecast.band import RelativeBand, band_quantile_for
from autoscaler.policies.forecast.capacity import CapacityLearner
from autoscaler.policies.forecast.decision import (
    NO_GPU_MEMORY,
    ForecastPolicy,
    default_forecaster,
)

__all__ = [
    "DESIRED_METRIC",
    "FORECAST_METRIC",
    "LOAD_METRIC",
    "NO_GPU_MEMORY",
    "CapacityLearner",
    "ForecastPolicy",
    "RelativeBand",
    "band_quantile_for",
    "default_forecaster",
]

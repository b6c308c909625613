"""Demand of the ``forecast`` policy: the token work arriving at a workload, per second.

Demand is counted in token work (prefill tokens + weighted decode tokens) and estimated as the
work served plus the growth of the work in the system (queued, and running requests' remaining
decode), because completions saturate under overload and overshoot while a backlog drains.
Behind an inference gateway it is the token work *arriving* instead: the requests the gateway
let through plus the growth of its flow-control backlog, at its mean request size.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from autoscaler.core.signals import SignalSnapshot
from autoscaler.policies.base import PolicyContext

SERVED = "served work + queue growth"
ARRIVALS = "arrivals at the gateway"


@dataclass(frozen=True, slots=True)
class Demand:
    """One tick's demand estimate and the parts the rest of the decision reuses."""

    demand: float
    """Token work per second (>= 0)."""
    source: str
    """:data:`SERVED` or :data:`ARRIVALS`: named in the ``forecast`` candidate's detail."""
    served: float
    """Token work served per second (what the capacity learner divides by the ready count)."""
    growth: float
    """Growth of the engines' queue, requests per second (signed)."""
    in_flight: float
    """Growth of the running requests' remaining decode work, per second (signed)."""
    mean_work: float
    """Token work of a mean request (the gateway's, where it sizes them)."""
    gateway_backlog: float
    gateway_growth: float


class DemandEstimator:
    """Per workload: the running-request history and the gateway's mean request size."""

    def __init__(self, ctx: PolicyContext) -> None:
        self.ctx = ctx
        self._running: deque[tuple[float, float]] = deque(maxlen=5)
        self._work_per_request: float | None = None
        """Mean token work per request behind a gateway (:meth:`request_work`)."""

    def estimate(self, snap: SignalSnapshot, *, recently_overloaded: bool) -> Demand:
        """The demand of ``snap`` (whose token rates are known: the caller holds otherwise).

        ``recently_overloaded``: latency was over budget within the last minute, so the
        gateway's request sizes are not trusted (see :meth:`request_work`).
        """
        assert snap.prompt_tokens_rate is not None and snap.generation_tokens_rate is not None
        wp, wd = self.ctx.prefill_weight, self.ctx.decode_weight
        mean_work = (snap.mean_prompt_tokens or 0.0) * wp + (snap.mean_output_tokens or 0.0) * wd
        # arrivals = work served + growth of the work still in the system; signed, because while
        # a backlog drains the fleet serves more than arrives. Waiting requests hold all their
        # work; running ones have prefilled and, on average, half their output still to decode.
        growth = snap.waiting_growth_rate or 0.0
        served = snap.prompt_tokens_rate * wp + snap.generation_tokens_rate * wd
        in_flight = self.running_growth(snap) * 0.5 * (snap.mean_output_tokens or 0.0) * wd
        demand = max(0.0, served + growth * mean_work + in_flight)
        source = SERVED
        # Where an inference gateway fronts the fleet, demand is read where it arrives: the
        # requests it let through plus its backlog's growth, at the gateway's mean request
        # size. It does not saturate with the fleet, and with flow control on it sees the
        # requests the gateway holds back, which no engine queue shows.
        arrivals = snap.arrival_requests_per_s()
        gateway_work = self.request_work(snap, recently_overloaded=recently_overloaded)
        if arrivals is not None and gateway_work is not None:
            demand = arrivals * gateway_work
            source = ARRIVALS
        if gateway_work is not None:
            mean_work = gateway_work
        return Demand(
            demand=demand,
            source=source,
            served=served,
            growth=growth,
            in_flight=in_flight,
            mean_work=mean_work,
            gateway_backlog=snap.gateway_backlog or 0.0,
            gateway_growth=snap.gateway_backlog_growth_rate or 0.0,
        )

    def request_work(self, snap: SignalSnapshot, *, recently_overloaded: bool) -> float | None:
        """Token work of a mean request as the gateway's token histograms size it (the engines'
        means where the gateway has none yet); None without a gateway or any size.

        The histograms are observed when responses end, so under overload (or while the
        gateway holds requests back) they size the requests that got through, the short ones
        first: a crowd of the usual requests would read as one of smaller ones. The size is
        therefore a 1-minute mean (``alpha`` 1/4 per 15 s tick) that moves only while nothing
        is held and latency is within budget, and holds its last value otherwise.
        """
        if snap.gateway_request_rate is None:
            return None
        prompt = snap.gateway_mean_prompt_tokens
        output = snap.gateway_mean_output_tokens
        if prompt is None or output is None:
            prompt, output = snap.mean_prompt_tokens, snap.mean_output_tokens
        if prompt is None or output is None:
            return self._work_per_request
        work = prompt * self.ctx.prefill_weight + output * self.ctx.decode_weight
        calm = not recently_overloaded and not (snap.gateway_backlog or 0.0) > 0
        if self._work_per_request is None:
            self._work_per_request = work
        elif calm:
            self._work_per_request += 0.25 * (work - self._work_per_request)
        return self._work_per_request

    def running_growth(self, snap: SignalSnapshot) -> float:
        """d(running requests)/dt over the rate window, from this workload's own past snapshots."""
        if snap.running is None:
            return 0.0
        history = self._running
        history.append((snap.timestamp, snap.running))
        (t0, r0), (t1, r1) = history[0], history[-1]
        return (r1 - r0) / (t1 - t0) if t1 > t0 else 0.0

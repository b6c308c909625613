"""An incremental replay of a trace through the simulator's replica model.

:func:`autoscaler.simulation.engine.simulate` runs a whole trace in one call. The emulator needs
the same event loop cut at arbitrary times, because its /metrics are read while wall time passes:
:meth:`Emulator.advance_to` processes every arrival and replica step up to a simulated time and
stops. The fleet is fixed (``replicas`` ready replicas from time 0, no lifecycle, no policy), the
router is the simulator's least-outstanding-work router, and the replicas are the simulator's own
:class:`~autoscaler.simulation.replica.Replica` objects driven through
:class:`~autoscaler.simulation.fleet.Fleet`, so for the same trace and fleet the emulator and a
``simulate`` run with a constant plan see the same request times.

The event handling below is a copy of the arrival and ``STEP`` branches of ``simulate`` (no
lifecycle or tick events exist in a fixed fleet), the gateway's flow control included.

Per-replica metrics are kept here, not in :class:`~autoscaler.simulation.observation.PrometheusView`
(which sums over the fleet): each routed request remembers its replica, and the per-request events
the replicas report are folded into that replica's counters and histograms after every advance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from heapq import heappop, heappush

import numpy as np
import numpy.typing as npt

from autoscaler.engines.gateway import INPUT_TOKEN_BUCKETS, OUTPUT_TOKEN_BUCKETS
from autoscaler.errors import InputError
from autoscaler.perf.model import PerfProfile
from autoscaler.simulation.fleet import Fleet
from autoscaler.simulation.gateway import GatewaySim
from autoscaler.simulation.lifecycle import LifecycleConfig
from autoscaler.simulation.observation import (
    ITL_BUCKETS,
    LATENCY_BUCKETS,
    TTFT_BUCKETS,
    one_two_five_buckets,
)
from autoscaler.simulation.replica import Replica
from autoscaler.simulation.requests import RequestTable
from autoscaler.traces.records import Trace

__all__ = [
    "Buckets",
    "Emulator",
    "GatewaySample",
    "HistogramState",
    "ReplicaMetrics",
    "ReplicaSample",
    "vllm_buckets",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class HistogramState:
    """A Prometheus histogram's state: per-bucket counts (``+Inf`` last), sum and count.

    Unlike :class:`autoscaler.simulation.observation.Histogram` it takes integer weights, so one
    request can stand for several observations (the inter-token latencies of its output).
    """

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = np.asarray(bounds, dtype=np.float64)
        self.counts: IntArray = np.zeros(len(bounds) + 1, dtype=np.int64)
        self.total = 0.0

    def observe(self, values: FloatArray, weights: IntArray | None = None) -> None:
        keep = np.isfinite(values)
        values = values[keep]
        if values.size == 0:
            return
        w = np.ones(values.shape[0], dtype=np.int64) if weights is None else weights[keep]
        idx = np.searchsorted(self.bounds, values, side="left")
        self.counts += np.bincount(idx, weights=w, minlength=self.counts.shape[0]).astype(np.int64)
        self.total += float((values * w).sum())

    @property
    def count(self) -> int:
        return int(self.counts.sum())


@dataclass(frozen=True, slots=True)
class Buckets:
    """Upper bounds (``+Inf`` implied) of each histogram a replica keeps: the served engine's
    own, since a histogram's buckets are fixed when it is observed (TGI's differ from vLLM's)."""

    ttft: tuple[float, ...]
    itl: tuple[float, ...]
    tpot: tuple[float, ...]
    e2e: tuple[float, ...]
    queue: tuple[float, ...]
    prompt_len: tuple[float, ...]
    generation_len: tuple[float, ...]


def vllm_buckets(max_context: int) -> Buckets:
    """vLLM V1's default buckets (the simulator's, ``autoscaler.simulation.observation``)."""
    tokens = one_two_five_buckets(max_context)
    return Buckets(
        ttft=TTFT_BUCKETS,
        itl=ITL_BUCKETS,
        tpot=ITL_BUCKETS,
        e2e=LATENCY_BUCKETS,
        queue=LATENCY_BUCKETS,
        prompt_len=tokens,
        generation_len=tokens,
    )


class ReplicaMetrics:
    """Counters and histograms of one replica, as its engine's /metrics would accumulate them."""

    __slots__ = (
        "success",
        "prompt_tokens_finished",
        "compute_s",
        "ttft",
        "itl",
        "tpot",
        "e2e",
        "queue",
        "prompt_len",
        "generation_len",
    )

    def __init__(self, buckets: Buckets) -> None:
        self.success = 0
        self.prompt_tokens_finished = 0
        self.compute_s = 0.0
        """Seconds from admission to the last token, summed over finished requests (Triton's
        cumulative compute duration)."""
        self.ttft = HistogramState(buckets.ttft)
        self.itl = HistogramState(buckets.itl)
        self.tpot = HistogramState(buckets.tpot)
        self.e2e = HistogramState(buckets.e2e)
        self.queue = HistogramState(buckets.queue)
        self.prompt_len = HistogramState(buckets.prompt_len)
        self.generation_len = HistogramState(buckets.generation_len)


@dataclass(frozen=True, slots=True)
class ReplicaSample:
    """What one replica's /metrics shows at one instant (the collector reads only this)."""

    index: int
    waiting: int
    running: int
    kv_usage: float
    prompt_tokens: int
    generation_tokens: int
    metrics: ReplicaMetrics


@dataclass(frozen=True, slots=True)
class GatewaySample:
    """What the fleet's endpoint picker (EPP) shows at one instant."""

    dispatched: int
    """Requests let through to a replica (its request counter)."""
    held: int
    """Requests in its flow-control queue."""
    input_tokens: HistogramState
    output_tokens: HistogramState


class Emulator:
    """A fixed fleet of ready replicas replaying ``trace``, advanced on demand.

    ``advance_to(t)`` is the only method that moves time; it never goes backwards (an earlier
    ``t`` is a no-op), so scrapes are monotone. ``now`` is the simulated time reached.

    With a ``gateway`` the fleet sits behind an endpoint picker, as in ``simulate``
    (:mod:`autoscaler.simulation.gateway`): with flow control, requests wait in its queue while
    no replica has room and are let through, oldest first, as replicas free up.
    """

    def __init__(
        self,
        trace: Trace,
        *,
        replicas: int,
        profile: PerfProfile,
        work_weights: tuple[float, float] = (1.0, 1.0),
        buckets: Buckets | None = None,
        gateway: GatewaySim | None = None,
    ) -> None:
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise InputError(f"replicas must be an integer >= 1, got {replicas!r}")
        self.trace = trace
        self.profile = profile
        self.reqs = RequestTable(trace, work_weights)
        lifecycle = LifecycleConfig()
        nodes = -(-replicas * profile.tp // lifecycle.node_gpus)
        self.fleet = Fleet(profile=profile, lifecycle=lifecycle, num_nodes=nodes, reqs=self.reqs)
        for _ in range(replicas):
            self.fleet.create_ready(0.0)
        self.replicas = replicas
        self.now = 0.0
        self.rejected = 0
        bounds = buckets or vllm_buckets(profile.max_context)
        self.metrics = [ReplicaMetrics(bounds) for _ in range(replicas)]
        self._slot_of: list[int] = [-1] * len(self.reqs)
        self._heap: list[tuple[float, int, int, int]] = []
        self._seq = 0
        self._next = 0
        self._limit = min(profile.max_context, profile.kv_capacity_tokens)
        self.gateway = gateway
        self._flow_control = gateway if gateway is not None and gateway.flow_control else None
        self.gateway_input = HistogramState(INPUT_TOKEN_BUCKETS)
        self.gateway_output = HistogramState(OUTPUT_TOKEN_BUCKETS)

    # -- time ------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """True when every request has arrived and no replica has work left."""
        return self._next >= len(self.reqs) and not self._heap

    @property
    def end_s(self) -> float:
        """The trace's duration (replicas may still be busy after it)."""
        return self.trace.duration_s

    def advance_to(self, t: float) -> int:
        """Process every event up to simulated time ``t``; returns how many were processed."""
        if not math.isfinite(t):
            raise ValueError(f"cannot advance to {t!r}")
        if t <= self.now:
            return 0
        reqs = self.reqs
        arrivals = reqs.arrival
        n = len(arrivals)
        heap = self._heap
        records = self.fleet.records
        inf = math.inf
        events = 0
        while True:
            t_arr = arrivals[self._next] if self._next < n else inf
            t_ev = heap[0][0] if heap else inf
            if min(t_arr, t_ev) > t:
                break
            events += 1
            if t_arr <= t_ev:
                rid = self._next
                self._next += 1
                if reqs.prompt[rid] + reqs.output[rid] > self._limit:
                    reqs.rejected[rid] = True
                    self.rejected += 1
                    continue
                self._arrive(rid, t_arr)
                continue
            now, _, slot, version = heappop(heap)
            srv = records[slot].server
            if srv is None or srv.version != version:
                continue
            end = srv.step_end(now)
            if end is not None:
                self._push(end, slot, srv.version)
            if self.fleet.backlog:
                self._release(now)
        self.now = t
        self._fold()
        return events

    def _push(self, when: float, slot: int, version: int) -> None:
        self._seq += 1
        heappush(self._heap, (when, self._seq, slot, version))

    def _arrive(self, rid: int, now: float) -> None:
        fc = self._flow_control
        if fc is None:
            self._route(rid, now)
            return
        server = None if self.fleet.backlog else fc.pick(self.fleet)
        if server is None:
            self.fleet.backlog.append(rid)  # flow control: wait at the gateway, in order
        else:
            self._route(rid, now, server)

    def _release(self, now: float) -> None:
        """Let held requests through, oldest first, while a replica has room."""
        fc = self._flow_control
        backlog = self.fleet.backlog
        while backlog and fc is not None:
            server = fc.pick(self.fleet)
            if server is None:
                return
            self._route(backlog.popleft(), now, server)

    def _route(self, rid: int, now: float, server: Replica | None = None) -> None:
        server = server or self.fleet.route()
        assert server is not None  # a fixed fleet of ready replicas is always routable
        self.fleet.dispatched += 1
        self.fleet.load[server.slot] += self.reqs.work[rid]
        self._slot_of[rid] = server.slot
        end = server.enqueue(rid, now)
        if end is not None:
            self._push(end, server.slot, server.version)

    def _fold(self) -> None:
        """Move the per-request events the replicas reported into per-replica metrics."""
        sink = self.fleet.sink
        reqs = self.reqs
        if sink.first_token_rids:
            ids = self._take(sink.first_token_rids)
            ttft = reqs.column_at("first_token", ids) - reqs.arrival_arr[ids]
            for slot, sel in self._by_slot(ids):
                self.metrics[slot].ttft.observe(ttft[sel])
        if sink.admitted_rids:
            ids = self._take(sink.admitted_rids)
            queue = reqs.column_at("admitted", ids) - reqs.arrival_arr[ids]
            for slot, sel in self._by_slot(ids):
                self.metrics[slot].queue.observe(queue[sel])
        if sink.finished_rids:
            ids = self._take(sink.finished_rids)
            fin = reqs.column_at("finished", ids)
            first = reqs.column_at("first_token", ids)
            compute = fin - reqs.column_at("admitted", ids)
            out = reqs.output_arr[ids]
            prompts = reqs.prompt_arr[ids]
            e2e = fin - reqs.arrival_arr[ids]
            decode_steps = np.maximum(out - 1, 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                tpot = np.where(decode_steps > 0, (fin - first) / decode_steps, np.nan)
            self.gateway_input.observe(prompts.astype(np.float64))
            self.gateway_output.observe(out.astype(np.float64))
            for slot, sel in self._by_slot(ids):
                m = self.metrics[slot]
                m.success += int(sel.sum())
                m.prompt_tokens_finished += int(prompts[sel].sum())
                m.compute_s += float(compute[sel].sum())
                m.e2e.observe(e2e[sel])
                m.tpot.observe(tpot[sel])
                m.itl.observe(tpot[sel], decode_steps[sel])
                m.prompt_len.observe(prompts[sel].astype(np.float64))
                m.generation_len.observe(out[sel].astype(np.float64))

    @staticmethod
    def _take(rids: list[int]) -> IntArray:
        ids = np.asarray(rids, dtype=np.int64)
        rids.clear()
        return ids

    def _by_slot(self, ids: IntArray) -> list[tuple[int, npt.NDArray[np.bool_]]]:
        slots = np.asarray([self._slot_of[i] for i in ids.tolist()], dtype=np.int64)
        return [(int(s), slots == s) for s in np.unique(slots).tolist()]

    # -- what /metrics shows ----------------------------------------------------------------
    def sample(self, index: int) -> ReplicaSample:
        """Replica ``index``'s state at :attr:`now` (gauges, token counters, histograms)."""
        rec = self.fleet.records[index]
        server = rec.server
        assert server is not None
        waiting, running, kv, gen = server.observe(self.now)
        return ReplicaSample(
            index=index,
            waiting=waiting,
            running=running,
            kv_usage=kv,
            prompt_tokens=server.prompt_tokens,
            generation_tokens=gen,
            metrics=self.metrics[index],
        )

    def samples(self) -> list[ReplicaSample]:
        return [self.sample(i) for i in range(self.replicas)]

    def gateway_sample(self) -> GatewaySample:
        """The endpoint picker's counters at :attr:`now` (its token histograms are observed
        when a response ends, as the EPP observes them from the response's usage)."""
        return GatewaySample(
            dispatched=self.fleet.dispatched,
            held=len(self.fleet.backlog),
            input_tokens=self.gateway_input,
            output_tokens=self.gateway_output,
        )

    def completed(self) -> int:
        """Requests finished so far, all replicas."""
        return sum(m.success for m in self.metrics)

"""What a policy may see of a simulated fleet: Prometheus scrapes and the Kubernetes API.

Every ``scrape_s`` (15 s) the fleet's /metrics are sampled as a Prometheus server would: monotone
counters, cumulative histograms over the engine's own buckets (vLLM V1 defaults,
``engines/METRICS.md``) and gauges. The snapshot handed to policies is computed from those samples
only: ``rate()`` over the rate window (1 m: the increase between the window's first and last
sample divided by their distance; Prometheus would also extrapolate to the window edges),
``histogram_quantile`` over the bucket increases of the window (Prometheus' linear interpolation),
the TTFT, prompt-size and per-request TPOT buckets themselves (for the observed SLO
attainment), gauges from the last scrape, replica states as the API shows them. Policies never
see the simulator's internals.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from autoscaler.core.replica_states import DEFAULT_PENDING_TIMEOUT_S, lead_time_s
from autoscaler.core.signals import ReplicaCounts, SignalSnapshot
from autoscaler.simulation.fleet import Fleet
from autoscaler.simulation.gateway import GatewaySim
from autoscaler.simulation.lifecycle import (
    DRAINING,
    INITIALIZING,
    PENDING,
    PROVISIONING,
    PULLING,
    READY,
)
from autoscaler.simulation.requests import RequestTable

# vLLM V1 default buckets (vllm/v1/metrics/buckets.py as listed in engines/METRICS.md)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
               10.0, 20.0, 40.0, 80.0)  # fmt: skip
LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                   60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip


def one_two_five_buckets(limit: int) -> tuple[float, ...]:
    """vLLM's ``build_1_2_5_buckets(max_model_len)``: 1, 2, 5, 10, 20, 50, ... up to ``limit``."""
    out: list[float] = []
    exponent = 0
    while True:
        for m in (1, 2, 5):
            value = m * 10**exponent
            if value > limit:
                return tuple(out)
            out.append(float(value))
        exponent += 1


class Histogram:
    """A cumulative Prometheus histogram (per-bucket counts; ``+Inf`` is the last bucket)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = np.asarray(bounds, dtype=np.float64)
        self.counts = np.zeros(len(bounds) + 1, dtype=np.int64)
        self.total = 0.0

    def observe_many(self, values: npt.NDArray[np.float64]) -> None:
        values = values[np.isfinite(values)]
        if values.size == 0:
            return
        idx = np.searchsorted(self.bounds, values, side="left")
        self.counts += np.bincount(idx, minlength=self.counts.shape[0])
        self.total += float(values.sum())


def histogram_quantile(
    q: float, bounds: npt.NDArray[np.float64], delta: npt.NDArray[np.int64]
) -> float | None:
    """Prometheus ``histogram_quantile`` over per-bucket increases (non-cumulative ``delta``).

    Linear interpolation inside the bucket holding the rank; the lowest bucket interpolates from
    0; a rank in the ``+Inf`` bucket returns the highest finite bound. None when empty.
    """
    cum = np.cumsum(delta)
    total = float(cum[-1]) if cum.size else 0.0
    if total <= 0:
        return None
    rank = q * total
    i = int(np.searchsorted(cum, rank, side="left"))
    if i >= bounds.shape[0]:
        return float(bounds[-1])
    upper = float(bounds[i])
    lower = 0.0 if i == 0 else float(bounds[i - 1])
    below = 0.0 if i == 0 else float(cum[i - 1])
    in_bucket = float(cum[i]) - below
    if in_bucket <= 0:
        return upper
    return lower + (upper - lower) * (rank - below) / in_bucket


def cumulative_rates(
    bounds: npt.NDArray[np.float64], delta: npt.NDArray[np.int64], dt: float
) -> tuple[tuple[float, float], ...]:
    """``sum by (le) (rate(h_bucket[window]))`` from per-bucket increases: ``(le, rate)`` pairs,
    cumulative, ``+Inf`` last; empty when nothing was observed in the window."""
    cum = np.cumsum(delta)
    if cum.size == 0 or cum[-1] <= 0:
        return ()
    les = [*bounds.tolist(), math.inf]
    return tuple((float(le), float(c) / dt) for le, c in zip(les, cum.tolist(), strict=True))


@dataclass(frozen=True, slots=True)
class Scrape:
    """One Prometheus sample of the whole fleet (counters summed over pods)."""

    t: float
    requests: int
    prompt_tokens: float
    gen_tokens: float
    prompt_sum: float
    output_sum: float
    ttft: npt.NDArray[np.int64]
    tpot: npt.NDArray[np.int64]
    e2e: npt.NDArray[np.int64]
    queue: npt.NDArray[np.int64]
    prompt_hist: npt.NDArray[np.int64]
    waiting: tuple[float, ...]
    running: tuple[float, ...]
    kv: tuple[float, ...]
    dispatched: int = 0
    """The gateway's request counter (requests let through to a replica)."""
    held: int = 0
    """The gateway's flow-control queue gauge."""


class PrometheusView:
    """Emulated /metrics of the fleet, scraped on a fixed interval, and the snapshots built from
    those scrapes alone."""

    def __init__(
        self,
        reqs: RequestTable,
        fleet: Fleet,
        *,
        workload: str = "default/llm",
        rate_window_s: float = 60.0,
        scrape_s: float = 15.0,
        pending_timeout_s: float = DEFAULT_PENDING_TIMEOUT_S,
        gateway: GatewaySim | None = None,
    ) -> None:
        self.reqs = reqs
        self.gateway = gateway
        self.fleet = fleet
        self.workload = workload
        self.rate_window_s = rate_window_s
        self.pending_timeout_s = pending_timeout_s
        self.ttft = Histogram(TTFT_BUCKETS)
        self.tpot = Histogram(ITL_BUCKETS)
        self.e2e = Histogram(LATENCY_BUCKETS)
        self.queue = Histogram(LATENCY_BUCKETS)
        self.prompt_hist = Histogram(one_two_five_buckets(fleet.profile.max_context))
        self.requests = 0
        self.prompt_tokens = 0.0
        self.prompt_sum = 0.0
        self.output_sum = 0.0
        keep = int(math.ceil(rate_window_s / scrape_s)) + 1
        self.samples: deque[Scrape] = deque(maxlen=keep)

    def scrape(self, now: float) -> Scrape:
        """Fold the per-request events since the last scrape into the counters; sample gauges."""
        reqs = self.reqs
        sink = self.fleet.sink
        if sink.first_token_rids:
            ids = np.asarray(sink.first_token_rids, dtype=np.int64)
            sink.first_token_rids.clear()
            first = reqs.column_at("first_token", ids)
            self.ttft.observe_many(first - reqs.arrival_arr[ids])
            self.prompt_tokens += float(reqs.prompt_arr[ids].sum())
        if sink.admitted_rids:
            ids = np.asarray(sink.admitted_rids, dtype=np.int64)
            sink.admitted_rids.clear()
            self.queue.observe_many(reqs.column_at("admitted", ids) - reqs.arrival_arr[ids])
        if sink.finished_rids:
            ids = np.asarray(sink.finished_rids, dtype=np.int64)
            sink.finished_rids.clear()
            fin = reqs.column_at("finished", ids)
            first = reqs.column_at("first_token", ids)
            out = reqs.output_arr[ids]
            self.e2e.observe_many(fin - reqs.arrival_arr[ids])
            multi = out > 1
            self.tpot.observe_many((fin[multi] - first[multi]) / (out[multi] - 1))
            prompts = reqs.prompt_arr[ids]
            self.prompt_hist.observe_many(prompts.astype(np.float64))
            self.requests += int(ids.shape[0])
            self.prompt_sum += float(prompts.sum())
            self.output_sum += float(out.sum())
        waiting: list[float] = []
        running: list[float] = []
        kv: list[float] = []
        gen = float(self.fleet.retired_gen_tokens)
        for rec in self.fleet.records:
            server = rec.server
            if server is None or rec.phase not in (READY, DRAINING):
                continue
            w, r, k, g = server.observe(now)
            gen += g
            if rec.phase == READY:
                waiting.append(float(w))
                running.append(float(r))
                kv.append(k)
        sample = Scrape(
            t=now,
            requests=self.requests,
            prompt_tokens=self.prompt_tokens,
            gen_tokens=gen,
            prompt_sum=self.prompt_sum,
            output_sum=self.output_sum,
            ttft=self.ttft.counts.copy(),
            tpot=self.tpot.counts.copy(),
            e2e=self.e2e.counts.copy(),
            queue=self.queue.counts.copy(),
            prompt_hist=self.prompt_hist.counts.copy(),
            waiting=tuple(waiting),
            running=tuple(running),
            kv=tuple(kv),
            dispatched=self.fleet.dispatched,
            held=len(self.fleet.backlog),
        )
        self.samples.append(sample)
        return sample

    def replica_counts(self, now: float) -> ReplicaCounts:
        """Pod states as ``kubectl get pods`` (or a watch) would show them."""
        ready = starting = pending = terminating = 0
        ages: list[float] = []
        for rec in self.fleet.records:
            phase = rec.phase
            if phase == READY:
                ready += 1
            elif phase == DRAINING:
                terminating += 1
            elif phase == PENDING:
                pending += 1
                ages.append(now - rec.created)
            elif phase in (PROVISIONING, PULLING, INITIALIZING):
                starting += 1
                ages.append(now - rec.created)
        ages.sort(reverse=True)
        return ReplicaCounts(
            spec=ready + starting + pending,
            ready=ready,
            starting=starting,
            pending=pending,
            terminating=terminating,
            oldest_unready_age_s=ages[0] if ages else 0.0,
            starting_ages_s=tuple(ages),
        )

    def snapshot(self, now: float) -> SignalSnapshot:
        """The snapshot a policy receives at ``now``, from the scrapes in the rate window."""
        counts = self.replica_counts(now)
        if not self.samples:
            return SignalSnapshot(workload=self.workload, timestamp=now, replicas=counts)
        last = self.samples[-1]
        first = self.samples[0]
        dt = last.t - first.t
        ttr = self.fleet.time_to_ready
        base = dict(
            workload=self.workload,
            timestamp=now,
            replicas=counts,
            data_age_s=now - last.t,
            waiting=float(sum(last.waiting)),
            running=float(sum(last.running)),
            kv_usage=(sum(last.kv) / len(last.kv)) if last.kv else None,
            kv_usage_max=max(last.kv) if last.kv else None,
            per_replica_waiting=last.waiting,
            per_replica_running=last.running,
            per_replica_kv_usage=last.kv,
            time_to_ready_s=lead_time_s(ttr),
            preemption_rate=0.0,
        )
        if dt <= 0:
            return SignalSnapshot(**base)  # type: ignore[arg-type]
        done = last.requests - first.requests
        mean_prompt = ((last.prompt_sum - first.prompt_sum) / done) if done else None
        mean_output = ((last.output_sum - first.output_sum) / done) if done else None
        gateway: dict[str, float | None] = {}
        if self.gateway is not None and self.gateway.observed:
            # the EPP's token histograms are observed at completion, from the same requests
            # the engines count; its flow-control gauge exists only with flow control on
            gateway = dict(
                gateway_request_rate=(last.dispatched - first.dispatched) / dt,
                gateway_mean_prompt_tokens=mean_prompt,
                gateway_mean_output_tokens=mean_output,
            )
            if self.gateway.flow_control:
                gateway["gateway_backlog"] = float(last.held)
                gateway["gateway_backlog_growth_rate"] = (last.held - first.held) / dt
        ttft_d = last.ttft - first.ttft
        tpot_d = last.tpot - first.tpot
        e2e_d = last.e2e - first.e2e
        queue_d = last.queue - first.queue
        prompt_d = last.prompt_hist - first.prompt_hist
        return SignalSnapshot(
            **base,  # type: ignore[arg-type]
            request_rate=done / dt,
            prompt_tokens_rate=(last.prompt_tokens - first.prompt_tokens) / dt,
            generation_tokens_rate=(last.gen_tokens - first.gen_tokens) / dt,
            mean_prompt_tokens=mean_prompt,
            mean_output_tokens=mean_output,
            p90_prompt_tokens=histogram_quantile(0.9, self.prompt_hist.bounds, prompt_d),
            waiting_growth_rate=(sum(last.waiting) - sum(first.waiting)) / dt,
            ttft_p90_s=histogram_quantile(0.9, self.ttft.bounds, ttft_d),
            tpot_p90_s=histogram_quantile(0.9, self.tpot.bounds, tpot_d),
            e2e_p95_s=histogram_quantile(0.95, self.e2e.bounds, e2e_d),
            queue_time_p90_s=histogram_quantile(0.9, self.queue.bounds, queue_d),
            ttft_buckets=cumulative_rates(self.ttft.bounds, ttft_d, dt),
            tpot_buckets=cumulative_rates(self.tpot.bounds, tpot_d, dt),
            prompt_buckets=cumulative_rates(self.prompt_hist.bounds, prompt_d, dt),
            **gateway,  # type: ignore[arg-type]
        )

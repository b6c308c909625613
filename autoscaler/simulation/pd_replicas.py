"""Prefill-only and decode-only replicas, and the pool fleet that builds them.

Disaggregated serving (DistServe, Splitwise; Dynamo, llm-d) runs a prompt's prefill on one pool
and its decode on another, moving the prompt's KV cache between them. The point is that a long
prefill no longer shares a step with co-running decodes: the aggregated replica's chunked-prefill
step (``max(prefill base, decode base) + decode + prefill chunks``) is what misses TPOT when an
8,192-token chunk rides with short answers.

* :class:`PrefillReplica` fills its whole token budget with prompt chunks (FIFO, chunked as in
  :class:`~autoscaler.simulation.replica.Replica`), admits a prompt when the prompt alone fits in
  its KV (the output is decoded elsewhere) and holds that KV until the transfer to the decode
  pool ends. Transfers leave one at a time over the replica's link (``link_bytes_per_s``), each
  taking ``prompt x kv_bytes_per_token / link`` (the KV the decode side needs; the first token
  travels with it).
* :class:`DecodeReplica` admits a handed-over request when its whole final context fits in the
  free KV (as the aggregated replica reserves it) and fewer than ``max_num_seqs`` run, with no
  prefill cost; every step is a pure decode step, advanced in closed form between events.

The first token reaches the client when the decode replica admits the request (the prefill's
token handed over with the KV); a request whose output is one token finishes at the end of its
transfer. Each replica reports to its pool's sink, so each pool's Prometheus view shows what
that pool's engines export (llm-d and Dynamo run prefill and decode as separate engines with
their own /metrics): the prefill pool's TTFT is the engine's own (arrival to prefill end), the
decode pool's TPOT and KV usage are the decode engines'.
"""

from __future__ import annotations

from heapq import heappush

from autoscaler.perf.model import PerfProfile
from autoscaler.simulation.fleet import Fleet, ReplicaRecord
from autoscaler.simulation.lifecycle import READY, LifecycleConfig
from autoscaler.simulation.replica import IDLE, MIXED, Replica, ReplicaSink
from autoscaler.simulation.requests import RequestTable

PREFILL = "prefill"
DECODE_ROLE = "decode"
ROLES = (PREFILL, DECODE_ROLE)

DEFAULT_LINK_GBPS = 400.0
"""Default KV-transfer link per prefill replica, in Gb/s: one 400 Gb/s RDMA NIC (ConnectX-7 or
an InfiniBand NDR port, what H100 nodes ship with); ``simulate --kv-link-gbps`` overrides it."""


class PdSink(ReplicaSink):
    """A pool's sink, plus the transfers its prefill replicas started since the engine looked."""

    __slots__ = ("handoffs",)

    def __init__(self, load: list[float]) -> None:
        super().__init__(load)
        self.handoffs: list[tuple[float, int, int]] = []
        """(transfer end, request id, prefill slot) for the engine to schedule."""


class PrefillReplica(Replica):
    """Prefill only: the token budget goes to prompt chunks; prompts leave over a KV link."""

    __slots__ = ("xfer_s_per_token", "link_free_at", "in_transfer")

    def __init__(
        self,
        slot: int,
        profile: PerfProfile,
        reqs: RequestTable,
        sink: ReplicaSink,
        xfer_s_per_token: float,
    ) -> None:
        super().__init__(slot, profile, reqs, sink)
        self.xfer_s_per_token = xfer_s_per_token
        self.link_free_at = 0.0
        self.in_transfer = 0

    def busy(self) -> bool:
        return self.in_transfer > 0 or super().busy()

    def observe(self, now: float) -> tuple[int, int, float, int]:
        running = len(self.prefilling) + (1 if self.head_offset else 0)
        kv = min(1.0, self.kv_reserved / self.kv_capacity)
        return len(self.waiting), running, kv, self.gen_tokens

    def transfer_done(self, rid: int, now: float) -> float | None:
        """The KV of ``rid`` has left: free it; returns a new step end if that unblocks work."""
        self.kv_reserved -= self.reqs.prompt[rid]
        self.in_transfer -= 1
        if self.mode == IDLE and self.waiting:
            return self.plan(now)
        return None

    def step_end(self, now: float) -> float | None:
        reqs = self.reqs
        sink = self.sink
        assert isinstance(sink, PdSink)
        if self.mode == MIXED and self.prefilling:
            for rid in self.prefilling:
                prompt = reqs.prompt[rid]
                self.prompt_tokens += prompt
                self.gen_tokens += 1
                reqs.first_token[rid] = now  # the prefill engine's own TTFT
                sink.first_token_rids.append(rid)
                sink.finished_rids.append(rid)  # its request counter; e2e/TPOT stay NaN here
                sink.load[self.slot] -= reqs.work[rid]
                start = max(now, self.link_free_at)
                self.link_free_at = start + prompt * self.xfer_s_per_token
                self.in_transfer += 1
                sink.handoffs.append((self.link_free_at, rid, self.slot))
            self.prefilling = []
        self.mode = IDLE
        return self.plan(now)

    def plan(self, now: float) -> float | None:
        prof = self.profile
        waiting = self.waiting
        if not waiting:
            self.mode = IDLE
            return None
        budget = prof.max_batched_tokens
        cost = self.admit_prefill(budget, prof.max_num_seqs, now, reserve_output=False)
        if cost <= 0.0:
            self.mode = IDLE
            return None
        self.mode = MIXED
        self.t0 = now
        self.version += 1
        return now + prof.prefill_base_s + cost


class DecodeReplica(Replica):
    """Decode only: handed-over requests join the batch when their final context fits."""

    __slots__ = ()

    def plan(self, now: float) -> float | None:
        prof = self.profile
        waiting = self.waiting
        reqs = self.reqs
        while waiting and self.n_running < prof.max_num_seqs:
            rid = waiting[0]
            prompt = reqs.prompt[rid]
            size = prompt + reqs.output[rid]
            if self.kv_reserved + size > self.kv_capacity:
                break
            waiting.popleft()
            self.kv_reserved += size
            reqs.admitted[rid] = now
            reqs.first_token[rid] = now  # not reported: a decode engine exports no TTFT
            heappush(self.running, (self.gen + reqs.output[rid] - 1, rid))
            self.ctx += prompt + 1
            self.n_running += 1
        return self.decode_or_idle(now)


class PoolFleet(Fleet):
    """One role's pool: the aggregated fleet's lifecycle, scheduling and router, with the role's
    replica class (its own node pool, so the two pools' lifecycles are independent)."""

    def __init__(
        self,
        *,
        role: str,
        profile: PerfProfile,
        lifecycle: LifecycleConfig,
        num_nodes: int,
        reqs: RequestTable,
        xfer_s_per_token: float = 0.0,
    ) -> None:
        super().__init__(profile=profile, lifecycle=lifecycle, num_nodes=num_nodes, reqs=reqs)
        self.role = role
        self.xfer_s_per_token = xfer_s_per_token
        self.pd_sink = PdSink(self.load)
        self.sink = self.pd_sink

    def _become_ready(self, rec: ReplicaRecord, now: float) -> None:
        super()._become_ready(rec, now)
        if self.role == PREFILL:
            rec.server = PrefillReplica(
                rec.slot, self.profile, self.reqs, self.sink, self.xfer_s_per_token
            )
        else:
            rec.server = DecodeReplica(rec.slot, self.profile, self.reqs, self.sink)
        assert rec.phase == READY


def transfer_s_per_token(kv_bytes_per_token: int, link_gbps: float) -> float:
    """Seconds one token's KV takes over a ``link_gbps`` link."""
    return kv_bytes_per_token * 8.0 / (link_gbps * 1e9)

"""One vLLM-like model-server replica, advanced event by event.

What it models (vLLM V1 scheduling, simplified where it does not change the figures):

* a FIFO waiting queue; a request is *admitted* when its whole final context (prompt + output
  tokens) fits in the free KV capacity and the running-sequence cap allows it. Reserving the final
  context means no preemptions; vLLM admits more optimistically and preempts instead (documented
  in ``docs/simulator.md``);
* steps with a token budget (``max_batched_tokens``): running sequences each take one decode
  token of the budget, the rest goes to prefill chunks of waiting requests in FIFO order
  (chunked prefill); a request's first token comes out at the end of the step that finishes its
  prompt;
* when nothing can be admitted, the running batch is constant until the next completion, so the
  decode steps up to it are advanced in closed form (:mod:`autoscaler.perf.model`), not one by one.
  An arrival interrupts such a stretch at the end of the step in progress.

Time never advances inside this class on its own: the engine calls :meth:`Replica.step_end` at the
time :meth:`Replica.plan` returned, and :meth:`Replica.enqueue` on arrivals.
"""

from __future__ import annotations

from collections import deque
from heapq import heappop, heappush

from autoscaler.perf.model import PerfProfile
from autoscaler.simulation.requests import RequestTable

IDLE = 0
MIXED = 1
DECODE = 2


class ReplicaSink:
    """Where replicas report per-request events; read by the observer at each scrape."""

    __slots__ = ("first_token_rids", "finished_rids", "admitted_rids", "load")

    def __init__(self, load: list[float]) -> None:
        self.first_token_rids: list[int] = []
        self.finished_rids: list[int] = []
        self.admitted_rids: list[int] = []
        self.load = load
        """Outstanding token work per replica slot (the router's least-outstanding-work key)."""


class Replica:
    """Scheduling state of one serving replica."""

    __slots__ = (
        "slot",
        "profile",
        "reqs",
        "sink",
        "waiting",
        "head_offset",
        "running",
        "gen",
        "ctx",
        "kv_reserved",
        "n_running",
        "kv_capacity",
        "mode",
        "t0",
        "steps",
        "batch",
        "ctx0",
        "version",
        "prefilling",
        "gen_tokens",
        "prompt_tokens",
        "_dec_base",
    )

    def __init__(self, slot: int, profile: PerfProfile, reqs: RequestTable, sink: ReplicaSink):
        self.slot = slot
        self.profile = profile
        self.reqs = reqs
        self.sink = sink
        self.waiting: deque[int] = deque()
        self.head_offset = 0
        """Prompt tokens of ``waiting[0]`` already prefilled (>0 means it is admitted)."""
        self.running: list[tuple[int, int]] = []
        """Heap of (decode-step count at which the request finishes, request id)."""
        self.gen = 0
        """Decode steps executed so far; every running request gains one token per step."""
        self.ctx = 0
        """Context tokens held by running requests (grows by ``n_running`` per step)."""
        self.kv_reserved = 0
        self.n_running = 0
        self.kv_capacity = profile.kv_capacity_tokens
        self.mode = IDLE
        self.t0 = 0.0
        self.steps = 0
        self.batch = 0
        self.ctx0 = 0
        self.version = 0
        self.prefilling: list[int] = []
        self.gen_tokens = 0
        self.prompt_tokens = 0
        self._dec_base = max(profile.prefill_base_s, profile.decode_base_s)

    # -- queries ---------------------------------------------------------------------------
    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    def busy(self) -> bool:
        return self.mode != IDLE or bool(self.waiting) or self.n_running > 0

    def observe(self, now: float) -> tuple[int, int, float, int]:
        """(waiting, running, KV usage 0..1, generation tokens emitted) as /metrics shows at
        ``now``, including the decode steps already done in a stretch in progress."""
        ctx = self.ctx
        gen_tokens = self.gen_tokens
        if self.mode == DECODE and now > self.t0:
            done = self.profile.decode_steps_within(self.batch, self.ctx0, now - self.t0)
            done = min(done, self.steps)
            ctx += self.batch * done
            gen_tokens += self.batch * done
        running = self.n_running + len(self.prefilling)
        return len(self.waiting), running, min(1.0, ctx / self.kv_capacity), gen_tokens

    # -- events ----------------------------------------------------------------------------
    def enqueue(self, rid: int, now: float) -> float | None:
        """Add an arriving request. Returns a new step-end time when the replica's plan changed
        (it was idle, or a decode stretch is cut at the end of the step in progress)."""
        self.waiting.append(rid)
        if self.mode == IDLE:
            return self.plan(now)
        if self.mode == DECODE:
            prof = self.profile
            done = prof.decode_steps_within(self.batch, self.ctx0, now - self.t0)
            if done + 1 < self.steps:
                self.steps = done + 1
                self.version += 1
                return self.t0 + prof.decode_steps_time(self.batch, self.ctx0, self.steps)
        return None

    def step_end(self, now: float) -> float | None:
        """Finish the activity that ends at ``now`` and plan the next; returns its end time."""
        reqs = self.reqs
        sink = self.sink
        if self.mode == DECODE:
            steps = self.steps
            self.gen += steps
            self.ctx += self.batch * steps
            self.gen_tokens += self.batch * steps
        elif self.mode == MIXED:
            if self.n_running:
                self.gen += 1
                self.ctx += self.n_running
                self.gen_tokens += self.n_running
        # completions of running requests
        running = self.running
        gen = self.gen
        finished_rids = sink.finished_rids
        load = sink.load
        slot = self.slot
        while running and running[0][0] <= gen:
            rid = heappop(running)[1]
            size = reqs.prompt[rid] + reqs.output[rid]
            self.ctx -= size
            self.kv_reserved -= size
            self.n_running -= 1
            reqs.finished[rid] = now
            finished_rids.append(rid)
            load[slot] -= reqs.work[rid]
        if self.mode == MIXED and self.prefilling:
            first_rids = sink.first_token_rids
            for rid in self.prefilling:
                prompt = reqs.prompt[rid]
                self.prompt_tokens += prompt
                reqs.first_token[rid] = now
                first_rids.append(rid)
                out = reqs.output[rid]
                self.gen_tokens += 1
                if out <= 1:
                    self.kv_reserved -= prompt + out
                    reqs.finished[rid] = now
                    finished_rids.append(rid)
                    load[slot] -= reqs.work[rid]
                else:
                    heappush(running, (gen + out - 1, rid))
                    self.ctx += prompt + 1
                    self.n_running += 1
            self.prefilling = []
        self.mode = IDLE
        return self.plan(now)

    def admit_prefill(
        self, budget: int, seqs_free: int, now: float, *, reserve_output: bool
    ) -> float:
        """Fill one step's token ``budget`` with prefill chunks from the head of the queue,
        admitting a request when its KV fits (its prompt, plus its output where the replica also
        decodes it: ``reserve_output``); the prefill seconds of the chunks taken.

        A prompt longer than the budget is split across steps (``head_offset`` remembers where
        it stopped), as vLLM's chunked prefill does. Shared by the aggregated replica and the
        disaggregated prefill replica, which differ only in the KV they reserve.
        """
        prof, reqs, waiting, prefilling = self.profile, self.reqs, self.waiting, self.prefilling
        cost = 0.0
        offset = self.head_offset
        while waiting and budget > 0:
            rid = waiting[0]
            prompt = reqs.prompt[rid]
            if offset == 0:
                size = prompt + reqs.output[rid] if reserve_output else prompt
                if seqs_free <= 0 or self.kv_reserved + size > self.kv_capacity:
                    break
                self.kv_reserved += size
                reqs.admitted[rid] = now
                self.sink.admitted_rids.append(rid)
            chunk = prompt - offset
            if chunk > budget:
                cost += prof.prefill_chunk_s(offset, budget)
                offset += budget
                budget = 0
                break
            cost += prof.prefill_chunk_s(offset, chunk)
            budget -= chunk
            offset = 0
            waiting.popleft()
            prefilling.append(rid)
            seqs_free -= 1
        self.head_offset = offset
        return cost

    def plan(self, now: float) -> float | None:
        """Choose the next activity at a step boundary: a mixed (prefill) step if a waiting
        request can make progress, else a decode stretch up to the next completion, else idle."""
        prof = self.profile
        waiting = self.waiting
        b = self.n_running
        if waiting:
            budget = prof.max_batched_tokens - b
            seqs_free = prof.max_num_seqs - b
            cost = self.admit_prefill(budget, seqs_free, now, reserve_output=True)
            progressed = cost > 0.0
            if progressed:
                step = self._dec_base + cost
                if b:
                    step += (
                        prof.decode_per_seq_s * b
                        + prof.decode_per_seq2_s * b * b
                        + prof.decode_per_ctx_token_s * self.ctx
                    )
                self.mode = MIXED
                self.t0 = now
                self.version += 1
                return now + step
        return self.decode_or_idle(now)

    def decode_or_idle(self, now: float) -> float | None:
        """A decode stretch up to the next completion when a batch is running, else idle; the
        stretch's end (None when idle)."""
        b = self.n_running
        if b:
            steps = self.running[0][0] - self.gen
            self.mode = DECODE
            self.t0 = now
            self.steps = steps
            self.batch = b
            self.ctx0 = self.ctx
            self.version += 1
            return now + self.profile.decode_steps_time(b, self.ctx, steps)
        self.mode = IDLE
        return None

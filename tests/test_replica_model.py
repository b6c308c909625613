"""The replica model against hand-computed timelines."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.simulation.replica import Replica, ReplicaSink
from autoscaler.simulation.requests import RequestTable
from autoscaler.traces.records import from_columns
from tests.simhelpers import toy_profile


def _replica(prompts, outputs, arrivals=None, **profile_overrides):
    n = len(prompts)
    arrivals = np.zeros(n) if arrivals is None else np.asarray(arrivals, dtype=float)
    trace = from_columns("t", "synthetic", arrivals, prompts, outputs, duration_s=10.0)
    reqs = RequestTable(trace, (1.0, 1.0))
    sink = ReplicaSink([0.0])
    return Replica(0, toy_profile(**profile_overrides), reqs, sink), reqs, sink


def _run_until_idle(replica, first_end):
    end = first_end
    while end is not None:
        end = replica.step_end(end)


def test_single_request_prefill_then_decode_in_closed_form():
    replica, reqs, _ = _replica([1000], [11])
    end = replica.enqueue(0, 0.0)
    # prefill step: max(prefill base, decode base) + 1000 * 0.0001
    assert end == pytest.approx(0.02 + 0.1)
    _run_until_idle(replica, end)
    assert reqs.first_token[0] == pytest.approx(0.12)
    # 10 more tokens, batch 1: 10 * (0.02 + 0.001)
    assert reqs.finished[0] == pytest.approx(0.12 + 10 * 0.021)
    assert not replica.busy()
    assert replica.kv_reserved == 0 and replica.ctx == 0


def test_long_prompt_is_chunked_by_the_token_budget():
    replica, reqs, _ = _replica([5000], [1])
    end = replica.enqueue(0, 0.0)
    _run_until_idle(replica, end)
    # three steps (2048 + 2048 + 904 tokens), each pays the step base once
    assert reqs.first_token[0] == pytest.approx(3 * 0.02 + 5000 * 0.0001)
    assert reqs.finished[0] == reqs.first_token[0]


def test_kv_capacity_blocks_admission_until_a_completion_frees_it():
    replica, reqs, _ = _replica([600, 600], [50, 5], kv_capacity_tokens=1000)
    end = replica.enqueue(0, 0.0)
    assert replica.enqueue(1, 0.0) is None  # busy: waits for the step boundary
    _run_until_idle(replica, end)
    assert reqs.admitted[1] >= reqs.finished[0]
    assert reqs.finished[1] > reqs.finished[0]


def test_arrival_cuts_a_decode_stretch_at_the_step_in_progress():
    replica, reqs, _ = _replica([100, 100], [101, 2], arrivals=[0.0, 0.5])
    end = replica.enqueue(0, 0.0)
    end = replica.step_end(end)  # prefill done; decode stretch of 100 steps planned
    assert end == pytest.approx(0.03 + 100 * 0.021)
    new_end = replica.enqueue(1, 0.5)
    assert new_end is not None and 0.5 <= new_end < 0.5 + 0.021 + 1e-9
    _run_until_idle(replica, new_end)
    # request 1 was admitted at the step boundary right after its arrival
    assert 0.5 <= reqs.admitted[1] < 0.5 + 0.021 + 1e-9
    assert reqs.finished[0] > reqs.finished[1]


def test_observe_counts_tokens_of_a_stretch_in_progress():
    replica, _, _ = _replica([100], [101])
    end = replica.step_end(replica.enqueue(0, 0.0))
    assert end is not None
    waiting, running, kv, gen = replica.observe(0.03 + 10 * 0.021 + 1e-6)
    assert (waiting, running) == (0, 1)
    assert gen == 1 + 10  # first token from prefill, then 10 decode steps
    assert kv == pytest.approx((100 + 1 + 10) / 100_000)

"""Pod classification, replica counts, time to ready and the pending timeout (pure, no API)."""

from __future__ import annotations

import ast
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autoscaler.core.replica_states
from autoscaler.core.replica_states import (
    MalformedPodError,
    PodView,
    ReplicaState,
    TimeToReadyWindow,
    lead_time_s,
    over_pending_timeout,
    parse_pod,
    parse_pods,
    parse_timestamp,
    pod_state,
    replica_counts,
    selector_matches,
)
from tests.test_layout import IO_CLIENTS

T0 = 1_714_564_800.0  # 2024-05-01T12:00:00Z


def ts(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(
    name: str = "p",
    *,
    created: float = T0,
    phase: str = "Pending",
    node: str | None = "gpu-1",
    ready: bool = False,
    ready_at: float | None = None,
    scheduled: bool | None = None,
    deleting: bool = False,
    labels: dict[str, str] | None = None,
    uid: str | None = None,
) -> dict[str, Any]:
    """A pod dict shaped as the API returns it (camelCase, RFC 3339 strings)."""
    conditions: list[dict[str, str]] = []
    if scheduled is not None:
        conditions.append({"type": "PodScheduled", "status": "True" if scheduled else "False"})
    if ready or ready_at is not None:
        conditions.append(
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "lastTransitionTime": ts(ready_at if ready_at is not None else created),
            }
        )
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": "llm",
        "creationTimestamp": ts(created),
        "labels": labels if labels is not None else {"app": "llama"},
    }
    if uid is not None:
        metadata["uid"] = uid
    if deleting:
        metadata["deletionTimestamp"] = ts(created + 1000)
    spec: dict[str, Any] = {"containers": [{"name": "engine", "image": "vllm"}]}
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": spec,
        "status": {"phase": phase, "conditions": conditions},
    }


# -- classification -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "state"),
    [
        (pod(phase="Running", ready=True), ReplicaState.READY),
        (pod(phase="Running", ready=False, ready_at=T0 + 5), ReplicaState.STARTING),
        (pod(phase="Pending", node="gpu-1", scheduled=True), ReplicaState.STARTING),
        (pod(phase="Pending", node=None), ReplicaState.PENDING),
        (pod(phase="Pending", node=None, scheduled=False), ReplicaState.PENDING),
        # the scheduler's verdict wins over a stale nodeName
        (pod(phase="Pending", node="gpu-1", scheduled=False), ReplicaState.PENDING),
        # Ready=True but the phase is not Running yet: not serving
        (pod(phase="Pending", ready=True), ReplicaState.STARTING),
        (pod(phase="Running", ready=True, deleting=True), ReplicaState.TERMINATING),
        (pod(phase="Pending", node=None, deleting=True), ReplicaState.TERMINATING),
        (pod(phase="Succeeded"), None),
        (pod(phase="Failed", deleting=True), None),
        # a just-created pod with no status at all is waiting for the scheduler
        ({**pod(node=None), "status": None}, ReplicaState.PENDING),
    ],
)
def test_pod_states(obj, state):
    assert pod_state(obj) is state


def test_parse_pod_reads_times_labels_and_uid():
    view = parse_pod(pod(phase="Running", ready=True, ready_at=T0 + 95, uid="u-1"))
    assert view is not None
    assert view.key == "llm/p"
    assert view.uid == "u-1"
    assert view.created_at == T0
    assert view.ready_at == T0 + 95
    assert view.time_to_ready_s == 95
    assert view.labels == {"app": "llama"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", T0),
        ("2024-05-01T12:00:00.250000Z", T0 + 0.25),
        ("2024-05-01T14:00:00+02:00", T0),
        ("2024-05-01T12:00:00", T0),  # no offset: the API writes UTC
    ],
)
def test_parse_timestamp(text, expected):
    assert parse_timestamp(text) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["", "yesterday", "2024-13-01T00:00:00Z", None, 12345])
def test_parse_timestamp_rejects_garbage(bad):
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_timestamp(bad)


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        ("a string", "not an object"),
        ({"spec": {}}, "metadata is missing"),
        ({"metadata": {"namespace": "llm"}}, "metadata.name is missing"),
        ({"metadata": {"name": "p", "namespace": "llm"}}, "creationTimestamp"),
        ({"metadata": {"name": "p", "creationTimestamp": "soon"}}, "creationTimestamp"),
        ({**pod(), "status": {"phase": 3}}, "status.phase"),
        ({**pod(), "status": {"conditions": "Ready"}}, "status.conditions is not a list"),
        ({**pod(), "status": {"conditions": [{"status": "True"}]}}, r"conditions\[0\] has no type"),
        ({**pod(), "spec": ["x"]}, "spec is a list"),
        ({**pod(), "metadata": {**pod()["metadata"], "labels": {"a": 1}}}, "labels"),
    ],
)
def test_malformed_pods_say_what_and_where(obj, problem):
    with pytest.raises(MalformedPodError, match=problem):
        parse_pod(obj)


def test_malformed_message_names_the_pod():
    obj = {"metadata": {"name": "p-7", "namespace": "llm", "creationTimestamp": "x"}}
    with pytest.raises(MalformedPodError, match=r"^pod llm/p-7: metadata.creationTimestamp"):
        parse_pod(obj)


def test_parse_pods_skips_malformed_and_finished_with_a_warning(caplog):
    objs = [
        pod("a", phase="Running", ready=True),
        {"metadata": {"name": "broken", "namespace": "llm"}},
        pod("done", phase="Succeeded"),
        42,
        pod("b", node=None),
    ]
    with caplog.at_level(logging.WARNING, logger="autoscaler.core.replica_states"):
        views = parse_pods(objs)
    assert [v.name for v in views] == ["a", "b"]
    warnings = [r.getMessage() for r in caplog.records]
    assert any("llm/broken" in w for w in warnings)
    assert len(warnings) == 2


def test_bad_ready_transition_time_keeps_the_pod_but_not_its_time_to_ready(caplog):
    obj = pod(phase="Running", ready=True)
    obj["status"]["conditions"][0]["lastTransitionTime"] = "later"
    with caplog.at_level(logging.WARNING, logger="autoscaler.core.replica_states"):
        view = parse_pod(obj)
    assert view is not None and view.state is ReplicaState.READY
    assert view.ready_at is None and view.time_to_ready_s is None
    assert "no time to ready" in caplog.text


def test_selector_matches_is_an_and_of_equalities():
    labels = {"app": "llama", "tier": "gpu"}
    assert selector_matches(labels, {"app": "llama"})
    assert selector_matches(labels, {"app": "llama", "tier": "gpu"})
    assert not selector_matches(labels, {"app": "llama", "tier": "cpu"})
    assert not selector_matches({}, {"app": "llama"})


# -- counts ---------------------------------------------------------------------------------------


def views(*objs: object) -> list[PodView]:
    return parse_pods(objs)


def test_counts_and_ages_oldest_first():
    now = T0 + 1000
    pods = views(
        pod("r1", phase="Running", ready=True),
        pod("r2", phase="Running", ready=True),
        pod("s1", created=T0 + 900, phase="Pending", scheduled=True),
        pod("p1", created=T0 + 400, node=None),
        pod("t1", phase="Running", ready=True, deleting=True),
        pod("gone", phase="Failed"),
    )
    counts = replica_counts(pods, now)
    assert (counts.ready, counts.starting, counts.pending, counts.terminating) == (2, 1, 1, 1)
    assert counts.spec == 4  # no Deployment known: ready + starting + pending
    assert counts.starting_ages_s == (600.0, 100.0)
    assert counts.oldest_unready_age_s == 600.0


def test_counts_take_the_deployment_spec_when_known():
    counts = replica_counts(views(pod("r", phase="Running", ready=True)), T0, spec=3)
    assert counts.spec == 3 and counts.ready == 1


def test_counts_of_nothing():
    counts = replica_counts([], T0)
    assert counts.spec == 0 and counts.oldest_unready_age_s == 0.0 and counts.starting_ages_s == ()


def test_ages_never_negative_under_clock_skew():
    counts = replica_counts(views(pod("s", created=T0 + 30, node=None)), now=T0)
    assert counts.starting_ages_s == (0.0,)


def test_over_pending_timeout_lists_old_unready_replicas_only():
    now = T0 + 1000
    pods = views(
        pod("old-pending", created=T0, node=None),
        pod("old-starting", created=T0 + 100, scheduled=True),
        pod("young", created=T0 + 900, node=None),
        pod("old-ready", created=T0, phase="Running", ready=True),
        pod("old-terminating", created=T0, node=None, deleting=True),
    )
    late = over_pending_timeout(pods, now, pending_timeout_s=600)
    assert [p.name for p in late] == ["old-pending", "old-starting"]
    assert over_pending_timeout(pods, now, pending_timeout_s=1000) == []


# -- time to ready ----------------------------------------------------------------------------


def ready_view(name: str, created: float, ttr: float, uid: str | None = None) -> PodView:
    view = parse_pod(
        pod(name, created=created, phase="Running", ready=True, ready_at=created + ttr, uid=uid)
    )
    assert view is not None
    return view


def test_time_to_ready_is_the_median_of_the_last_ten_by_ready_time():
    window = TimeToReadyWindow()
    # 12 replicas, delivered out of order (as a re-list does); the two oldest fall out
    pods = [
        ready_view(f"p{i}", T0 + 1000 * i, ttr)
        for i, ttr in enumerate([900, 900, 60, 70, 80, 90, 100, 110, 120, 130, 140, 2000])
    ]
    for view in reversed(pods):
        window.observe(view)
    assert window.observations() == (60, 70, 80, 90, 100, 110, 120, 130, 140, 2000)
    assert window.value() == 105.0


def test_one_slow_replica_does_not_move_the_lead_time_much():
    window = TimeToReadyWindow()
    for i, ttr in enumerate([90, 95, 100, 1200]):
        window.observe(ready_view(f"p{i}", T0 + 10 * i, ttr))
    assert window.value() == 97.5  # a mean would say 371


def test_each_pod_is_observed_once_at_its_first_ready():
    window = TimeToReadyWindow()
    first = ready_view("p", T0, 100, uid="u1")
    assert window.observe(first) == 100
    # readiness flapped: the Ready condition now has a later transition time
    again = ready_view("p", T0, 700, uid="u1")
    assert window.observe(again) is None
    assert window.observations() == (100,)
    # a re-created pod of the same name (new uid) is a new replica
    assert window.observe(ready_view("p", T0 + 5000, 80, uid="u2")) == 80


def test_unready_or_skewed_pods_are_not_observed():
    window = TimeToReadyWindow()
    starting = parse_pod(pod("s", scheduled=True))
    assert starting is not None and window.observe(starting) is None
    skewed = ready_view("k", T0, -5)
    assert skewed.time_to_ready_s is None and window.observe(skewed) is None
    assert window.value() is None


def test_window_validation_and_lead_time_helper():
    with pytest.raises(ValueError, match="at least 1"):
        TimeToReadyWindow(0)
    assert lead_time_s([]) is None
    assert lead_time_s([3.0, 1.0, 2.0]) == 2.0


# -- properties -------------------------------------------------------------------------------

_states = st.sampled_from(["ready", "starting", "pending", "terminating", "finished", "broken"])


def _make(kind: str, i: int, created: float) -> object:
    name = f"p{i}"
    if kind == "broken":
        return {"metadata": {"name": name, "creationTimestamp": "never"}}
    shapes: dict[str, dict[str, Any]] = {
        "ready": {"phase": "Running", "ready": True},
        "starting": {"scheduled": True},
        "pending": {"node": None},
        "terminating": {"phase": "Running", "deleting": True},
        "finished": {"phase": "Succeeded"},
    }
    return pod(name, created=created, **shapes[kind])


@settings(max_examples=150, deadline=None)
@given(
    kinds=st.lists(st.tuples(_states, st.integers(0, 5000)), max_size=30),
    now_offset=st.integers(0, 10_000),
)
def test_counts_add_up_to_the_live_well_formed_pods(kinds, now_offset):
    objs = [_make(kind, i, T0 + created) for i, (kind, created) in enumerate(kinds)]
    counts = replica_counts(parse_pods(objs), T0 + now_offset)
    live = sum(kind not in ("finished", "broken") for kind, _ in kinds)
    total = counts.ready + counts.starting + counts.pending + counts.terminating
    assert total == live
    assert counts.ready == sum(kind == "ready" for kind, _ in kinds)
    assert counts.terminating == sum(kind == "terminating" for kind, _ in kinds)
    assert len(counts.starting_ages_s) == counts.starting + counts.pending
    assert list(counts.starting_ages_s) == sorted(counts.starting_ages_s, reverse=True)
    assert all(age >= 0 for age in counts.starting_ages_s)
    assert counts.oldest_unready_age_s == max(counts.starting_ages_s, default=0.0)
    assert counts.spec == counts.ready + counts.starting + counts.pending


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=5),
            st.dictionaries(
                st.sampled_from(["metadata", "spec", "status"]),
                st.one_of(
                    st.none(),
                    st.integers(),
                    st.text(max_size=5),
                    st.dictionaries(
                        st.sampled_from(
                            [
                                "name",
                                "creationTimestamp",
                                "phase",
                                "conditions",
                                "nodeName",
                                "labels",
                                "deletionTimestamp",
                            ]
                        ),
                        st.one_of(
                            st.none(),
                            st.integers(),
                            st.text(max_size=8),
                            st.just("2024-05-01T12:00:00Z"),
                            st.lists(st.integers()),
                        ),
                    ),
                ),
            ),
        ),
        max_size=10,
    )
)
def test_arbitrary_objects_never_crash_the_parser(objs):
    views_ = parse_pods(objs)
    assert len(views_) <= len(objs)
    assert all(isinstance(v, PodView) for v in views_)
    replica_counts(views_, T0)  # and counting what survived works


def test_the_module_is_pure():
    """No Kubernetes client (or other I/O) import: the simulator uses it without a cluster."""
    source = Path(autoscaler.core.replica_states.__file__).read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert {"autoscaler.core.signals", "statistics"} <= imported  # the walk sees imports at all
    bad = {n for n in imported if any(n == c or n.startswith(c + ".") for c in IO_CLIENTS)}
    assert bad == set()

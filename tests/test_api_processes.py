"""``service.api_processes``: the HTTPS API served by processes of its own, fed with copies of
the store (autoscaler/cli/api_workers.py). Real processes, real TLS, real sockets: every fresh
connection may land on any of them (``SO_REUSEPORT``), so "every answer" below means many
connections, all of which must agree with the loop's store."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from autoscaler.cli.api_workers import ApiWorkers, WorkerSpec
from autoscaler.errors import InputError
from autoscaler.live.store import RecommendationStore, WorkloadInfo
from external_metrics.self_signed import self_signed_pair
from tests.external_metrics_support import DESIRED, METRICS, put_fresh

WORKLOADS = [
    WorkloadInfo("llm", "a", {"workload": "a"}),
    WorkloadInfo("llm", "b", {"workload": "b"}),
]
CONNECTIONS = 24
"""Fresh connections per check: with 2 processes, the chance that all land on one is 2**-23."""


def _spec(tmp_path: Path) -> WorkerSpec:
    cert, key = self_signed_pair(("127.0.0.1", "localhost"))
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    return WorkerSpec(
        workloads=tuple(WORKLOADS),
        staleness_s=600.0,
        metric_names=METRICS,
        cert_file=str(tmp_path / "tls.crt"),
        key_file=str(tmp_path / "tls.key"),
        kube=None,
    )


def _get(url: str) -> tuple[int, bytes]:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=5, context=ctx) as r:  # one connection each
            return int(r.status), r.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def _desired(port: int, name: str) -> list[object]:
    """The desired replicas of ``llm/name`` over many fresh connections (None: not a 200)."""
    url = (
        f"https://127.0.0.1:{port}/apis/external.metrics.k8s.io/v1beta1/namespaces/llm/"
        f"{DESIRED}?labelSelector=workload%3D{name}"
    )
    out: list[object] = []
    for _ in range(CONNECTIONS):
        try:
            status, body = _get(url)
        except OSError as exc:
            out.append(type(exc).__name__)
            continue
        if status != 200:
            out.append(status)
            continue
        out.append(json.loads(body)["items"][0]["value"])
    return out


async def _until(what: str, check: object, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(check)  # type: ignore[arg-type]
        if last is True:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: last seen {last!r}")


@pytest_asyncio.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[RecommendationStore, ApiWorkers, int]]:
    store = RecommendationStore(
        list(WORKLOADS), staleness_s=600.0, clock=time.time, metric_names=METRICS
    )
    workers = ApiWorkers(store, _spec(tmp_path), 2)
    port = await workers.start("127.0.0.1", 0)
    try:
        yield store, workers, port
    finally:
        await workers.stop()


@pytest.mark.asyncio
async def test_every_process_answers_from_the_loops_latest_store(served):
    store, _, port = served
    # nothing recommended yet: every process answers 503, as the in-process API does
    await _until("503 before any tick", lambda: set(_desired(port, "a")) == {503})
    put_fresh(store, "llm/a", desired=4)
    await _until("the first value everywhere", lambda: set(_desired(port, "a")) == {"4000m"})
    put_fresh(store, "llm/a", desired=7)
    put_fresh(store, "llm/b", desired=2)
    await _until("the newer value everywhere", lambda: set(_desired(port, "a")) == {"7000m"})
    assert set(_desired(port, "b")) == {"2000m"}


@pytest.mark.asyncio
async def test_a_process_that_dies_is_replaced_and_catches_up(served):
    store, workers, port = served
    put_fresh(store, "llm/a", desired=5)
    await _until("the value everywhere", lambda: set(_desired(port, "a")) == {"5000m"})
    victim = workers._workers[0].process.pid
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    put_fresh(store, "llm/a", desired=6)  # written while one copy is missing
    await _until(
        "a new process serving the current value",
        lambda: workers._workers[0].process.pid != victim and set(_desired(port, "a")) == {"6000m"},
    )


@pytest.mark.asyncio
async def test_stopping_closes_the_port(tmp_path):
    store = RecommendationStore(
        list(WORKLOADS), staleness_s=600.0, clock=time.time, metric_names=METRICS
    )
    workers = ApiWorkers(store, _spec(tmp_path), 2)
    port = await workers.start("127.0.0.1", 0)
    processes = [w.process for w in workers._workers]
    await workers.stop()
    assert all(not p.is_alive() for p in processes)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


@pytest.mark.asyncio
async def test_a_port_in_use_is_one_clear_error(tmp_path):
    store = RecommendationStore(list(WORKLOADS), staleness_s=600.0, clock=time.time)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        workers = ApiWorkers(store, _spec(tmp_path), 2)
        with pytest.raises(InputError, match=f"cannot listen on 127.0.0.1:{port}"):
            await workers.start("127.0.0.1", port)


@pytest.mark.asyncio
async def test_an_unreadable_certificate_stops_start_up_with_the_reason(tmp_path):
    spec = _spec(tmp_path)
    Path(spec.key_file).write_text("not a key\n")
    store = RecommendationStore(list(WORKLOADS), staleness_s=600.0, clock=time.time)
    workers = ApiWorkers(store, spec, 2)
    with pytest.raises(InputError, match="API process 0"):
        await workers.start("127.0.0.1", 0)


def test_a_store_copy_must_hold_the_same_workloads():
    store = RecommendationStore(list(WORKLOADS), staleness_s=60.0, clock=time.time)
    other = RecommendationStore(WORKLOADS[:1], staleness_s=60.0, clock=time.time)
    version, entries = other.published()
    with pytest.raises(ValueError, match="other workloads"):
        store.load(version, entries)
    put_fresh(store, "llm/a", desired=3)
    copy = RecommendationStore(list(WORKLOADS), staleness_s=60.0, clock=time.time)
    copy.load(*store.published())
    assert copy.version == store.version == 1
    assert copy.get("llm/a").metric(DESIRED) == 3


def test_a_store_copy_in_chunks_is_the_store():
    """What the API processes rebuild from the chunks is the loop's store, entry for entry, and
    a newer version's chunk drops an unfinished older copy."""
    from autoscaler.cli.api_workers import CopyAssembler, encode_copy

    infos = [WorkloadInfo("llm", f"w{i}", {"workload": f"w{i}"}) for i in range(10)]
    store = RecommendationStore(infos, staleness_s=60.0, clock=time.time, metric_names=METRICS)
    for i in range(0, 10, 2):
        put_fresh(store, f"llm/w{i}", desired=i + 1)
    version, entries = store.published()
    messages = encode_copy(version, entries, chunk=3)
    assert len(messages) == 4
    assembler = CopyAssembler()
    assert [assembler.add(m) for m in messages[:-1]] == [None, None, None]
    whole = assembler.add(messages[-1])
    assert whole == (version, entries)
    # an unfinished copy, then a newer one: only the newer one is put together
    put_fresh(store, "llm/w1", desired=9)
    newer_version, newer = store.published()
    assert assembler.add(messages[0]) is None
    parts = encode_copy(newer_version, newer, chunk=3)
    results = [assembler.add(m) for m in parts]
    assert results[:-1] == [None] * 3
    assert results[-1] == (newer_version, newer)
    copy = RecommendationStore(infos, staleness_s=60.0, clock=time.time, metric_names=METRICS)
    copy.load(*results[-1])
    assert copy.get("llm/w1").metric(DESIRED) == 9

"""The response cache (external_metrics/response_cache.py): the cached answers are byte for byte
what the uncached code computes, across puts, holds, shadow updates and staleness expiry, and
every cache stays bounded. No timing: what is measured is the wire, not the speed."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application, Request

from autoscaler.core.current_autoscaler import CurrentAutoscaler
from autoscaler.live.store import RecommendationStore, WorkloadInfo
from external_metrics.app import AcceptMemo, create_api_app
from external_metrics.json_api import workload_doc
from external_metrics.metrics_api import RESPONSES
from external_metrics.negotiation import accepts_json
from external_metrics.response_cache import ResponseCache, age_json, split_around
from external_metrics.status import json_bytes
from tests.external_metrics_support import (
    DESIRED,
    FORECAST,
    LOAD,
    METRICS,
    T0,
    Clock,
    make_store,
    put_fresh,
    put_hold,
)

PREFIX = "/apis/external.metrics.k8s.io/v1beta1"
HPA_ACCEPT = {"Accept": "application/vnd.kubernetes.protobuf, */*"}
WORKLOADS = [
    WorkloadInfo("llm", "llama-70b", {"workload": "llama-70b", "model": "llama", "tier": "gold"}),
    WorkloadInfo("llm", "llama-8b", {"workload": "llama-8b", "model": "llama"}),
    WorkloadInfo("llm", "mistral", {"workload": "mistral"}, shadow=True),
    WorkloadInfo("solo", "bloom", {"workload": "bloom"}),
    WorkloadInfo("llm", "never", {"workload": "never"}),
]
SELECTORS = {
    "llm/llama-70b": ["workload=llama-70b", "model=llama,tier=gold", "workload in (llama-70b)"],
    "llm/llama-8b": ["workload=llama-8b", "model=llama,tier!=gold"],
    "llm/mistral": ["workload=mistral"],
    "solo/bloom": ["workload=bloom", ""],
    "llm/never": ["workload=never"],
}
STALENESS_S = 60.0


class Pair:
    """The same store behind a cached and an uncached app; every answer must be identical."""

    def __init__(
        self,
        store: RecommendationStore,
        cached: TestClient[Request, Application],
        plain: TestClient[Request, Application],
    ) -> None:
        self.store = store
        self.cached = cached
        self.plain = plain

    async def both(self, path: str, params: dict[str, str] | None = None) -> tuple[int, bytes]:
        got = []
        for client in (self.cached, self.plain):
            async with client.get(path, params=params, headers=HPA_ACCEPT) as resp:
                got.append((resp.status, resp.headers["Content-Type"], await resp.read()))
        assert got[0] == got[1], f"cached and uncached answers differ for {path} {params}"
        return got[0][0], got[0][2]

    async def metric(self, key: str, metric: str, selector: str) -> tuple[int, bytes]:
        namespace = key.split("/")[0]
        return await self.both(
            f"{PREFIX}/namespaces/{namespace}/{metric}", {"labelSelector": selector}
        )

    async def workload(self, key: str) -> tuple[int, bytes]:
        status, body = await self.both(f"/v1/workloads/{key}")
        if status == 200:  # and equal to the document serialised whole, the pre-cache way
            doc = workload_doc(self.store.get(key), now=self.store.clock(), staleness_s=STALENESS_S)
            assert body == json_bytes(doc)
        return status, body

    async def everything(self) -> dict[tuple[str, ...], tuple[int, bytes]]:
        """Every read of every workload, asked twice (the second from the cache where it can)."""
        answers: dict[tuple[str, ...], tuple[int, bytes]] = {}
        for _ in range(2):
            for key, selectors in SELECTORS.items():
                for metric in METRICS:
                    for selector in selectors:
                        got = await self.metric(key, metric, selector)
                        assert answers.setdefault((key, metric, selector), got) == got
                got = await self.workload(key)
                assert answers.setdefault((key,), got) == got
        return answers


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + 0.125)  # fractional seconds: age_s is a float with a fraction


@pytest_asyncio.fixture
async def pair(clock: Clock) -> AsyncIterator[Pair]:
    store = make_store(WORKLOADS, clock, staleness_s=STALENESS_S)
    put_fresh(store, "llm/llama-70b", desired=3, load=2.5, forecast=2.75)
    put_fresh(store, "llm/llama-8b", desired=1, load=0.4, forecast=0.6)
    put_fresh(store, "llm/mistral", desired=5, load=4.2, forecast=4.9)
    put_fresh(store, "solo/bloom", desired=2, load=1.0005, forecast=1.5)
    cached = TestClient(TestServer(create_api_app(store, None)))
    plain = TestClient(TestServer(create_api_app(store, None, cache_responses=False)))
    await cached.start_server()
    await plain.start_server()
    try:
        yield Pair(store, cached, plain)
    finally:
        await cached.close()
        await plain.close()


def value_of(body: bytes) -> str:
    return str(json.loads(body)["items"][0]["value"])


# --- the wire does not change ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_cached_answers_equal_uncached_across_puts_holds_and_expiry(pair, clock):
    first = await pair.everything()
    assert first[("llm/llama-70b", DESIRED, "workload=llama-70b")][0] == 200
    assert first[("llm/never", DESIRED, "workload=never")][0] == 503
    sizes = pair.cached.app[RESPONSES].sizes()
    assert sizes["metric_bodies"] == 4 * len(METRICS)  # the four fresh workloads
    assert sizes["workload_documents"] == 4
    assert pair.plain.app[RESPONSES].sizes() == {
        "selections": 0,
        "metric_bodies": 0,
        "workload_documents": 0,
    }

    clock.now += 30.5  # values unchanged, age_s moves
    later = await pair.everything()
    assert (
        later[("llm/llama-70b", LOAD, "workload=llama-70b")]
        == first[("llm/llama-70b", LOAD, "workload=llama-70b")]
    )
    assert later[("llm/llama-70b",)] != first[("llm/llama-70b",)]
    assert json.loads(later[("llm/llama-70b",)][1])["age_s"] == 30.5

    put_fresh(pair.store, "llm/llama-70b", desired=4, load=3.25, forecast=3.5)
    changed = await pair.everything()
    assert value_of(changed[("llm/llama-70b", LOAD, "workload=llama-70b")][1]) == "3250m"
    assert json.loads(changed[("llm/llama-70b",)][1])["desired_replicas"] == 4

    put_hold(pair.store, "llm/llama-70b", "Prometheus query failed")
    held = await pair.everything()
    for metric in METRICS:
        assert held[("llm/llama-70b", metric, "workload=llama-70b")][0] == 503
    assert held[("llm/llama-70b",)][0] == 503

    put_fresh(pair.store, "llm/llama-70b", desired=6, load=5.5, forecast=6.0)
    again = await pair.everything()
    assert value_of(again[("llm/llama-70b", LOAD, "workload=llama-70b")][1]) == "5500m"

    pair.store.set_current("llm/mistral", CurrentAutoscaler("HorizontalPodAutoscaler", "m", 4, 7))
    shadowed = await pair.everything()
    assert json.loads(shadowed[("llm/mistral",)][1])["shadow"]["difference"] == -2
    assert shadowed[("llm/mistral", DESIRED, "workload=mistral")][0] == 200


@pytest.mark.asyncio
async def test_a_cached_body_expires_exactly_when_the_entry_goes_stale(pair, clock):
    updated = pair.store.get("llm/llama-8b").updated_at
    await pair.everything()  # fills the cache
    clock.now = updated + STALENESS_S  # the last instant that is still fresh
    at_bound = await pair.everything()
    assert at_bound[("llm/llama-8b", DESIRED, "workload=llama-8b")][0] == 200
    assert json.loads(at_bound[("llm/llama-8b",)][1])["freshness"] == "fresh"
    clock.now = math.nextafter(updated + STALENESS_S, math.inf)
    past = await pair.everything()
    assert past[("llm/llama-8b", DESIRED, "workload=llama-8b")][0] == 503
    assert past[("llm/llama-8b",)][0] == 503
    assert b"stale" in past[("llm/llama-8b", DESIRED, "workload=llama-8b")][1]
    put_fresh(pair.store, "llm/llama-8b", desired=2, load=1.5, forecast=1.75)
    fresh = await pair.everything()
    assert value_of(fresh[("llm/llama-8b", DESIRED, "workload=llama-8b")][1]) == "2000m"


@pytest.mark.asyncio
async def test_a_replaced_entry_is_never_answered_from_the_old_body(pair):
    path = f"{PREFIX}/namespaces/llm/{LOAD}"
    for load in (2.5, 2.5, 7.25, 0.001, 0.001, 2.5):
        put_fresh(pair.store, "llm/llama-70b", desired=3, load=load, forecast=2.75)
        for _ in range(2):
            status, body = await pair.both(path, {"labelSelector": "workload=llama-70b"})
            assert status == 200
            assert value_of(body) == f"{round(load * 1000)}m"


@pytest.mark.asyncio
async def test_errors_are_answered_alike_and_never_cached(pair):
    cache = pair.cached.app[RESPONSES]
    for selector in ["workload in (a", "model=llama", "workload=nope", "=x"]:
        status, _ = await pair.both(
            f"{PREFIX}/namespaces/llm/{DESIRED}", {"labelSelector": selector}
        )
        assert status == 400
    status, _ = await pair.both(f"{PREFIX}/namespaces/llm/llm_made_up", {"labelSelector": ""})
    assert status == 404
    status, _ = await pair.both("/v1/workloads/llm/nope")
    assert status == 404
    assert cache.sizes() == {"selections": 0, "metric_bodies": 0, "workload_documents": 0}


@pytest.mark.asyncio
async def test_an_integer_clock_still_writes_age_s_as_the_encoder_does():
    clock = Clock(1_760_000_000)  # an int, as a test clock might return
    store = make_store(WORKLOADS, clock, staleness_s=STALENESS_S)
    put_fresh(store, "solo/bloom")
    client = TestClient(TestServer(create_api_app(store, None)))
    await client.start_server()
    try:
        for step in (0, 7, 0):
            clock.now += step
            for _ in range(2):
                async with client.get("/v1/workloads/solo/bloom") as resp:
                    body = await resp.read()
                doc = workload_doc(store.get("solo/bloom"), now=clock.now, staleness_s=STALENESS_S)
                assert body == json_bytes(doc)
    finally:
        await client.close()
    assert b'"age_s":7,' in body


# --- the pieces -------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["a", "b", "c"])
def test_split_around_rejoins_to_the_whole_document(field):
    doc = {"a": {"x": [1, 2.5, None]}, "b": 'quote " and \u00e9', "c": 3.0}
    prefix, suffix = split_around(doc, field)
    assert prefix + json_bytes(doc[field]) + suffix == json_bytes(doc)
    assert split_around({"only": 1}, "only") == (b'{"only":', b"}")


@pytest.mark.parametrize(
    "age", [0.0, -0.0, 30.5, 1e-7, 1e22, -3.25, 7, 0, math.inf, -math.inf, math.nan]
)
def test_age_json_is_what_the_encoder_writes(age):
    assert age_json(age) == json_bytes(age if math.isfinite(age) else None)


# --- bounded ----------------------------------------------------------------------------------


def test_selections_are_a_bounded_lru():
    cache = ResponseCache(max_selectors=100)
    for i in range(10_000):
        cache.remember_selection("llm", f"labelSelector=workload%3Dx,n!={i}", "llm/x")
        if i % 10 == 0:  # keep one hot entry in use
            assert cache.selection("llm", "labelSelector=workload%3Dx,n!=0") == "llm/x"
    assert cache.sizes()["selections"] == 100
    assert cache.selection("llm", "labelSelector=workload%3Dx,n!=0") == "llm/x"
    assert cache.selection("llm", "labelSelector=workload%3Dx,n!=1") is None


def test_bodies_are_bounded_and_disabled_caches_keep_nothing():
    store = make_store(WORKLOADS, Clock(), staleness_s=STALENESS_S)
    put_fresh(store, "llm/llama-70b")
    entry = store.get("llm/llama-70b")
    cache = ResponseCache(max_bodies=3)
    for i in range(50):
        cache.put_metric_body(f"ns/w{i}", entry, DESIRED, b"{}")
        cache.put_workload_parts(f"ns/w{i}", entry, b"{", b"}")
    assert cache.sizes()["metric_bodies"] == 3
    assert cache.sizes()["workload_documents"] == 3
    off = ResponseCache(enabled=False)
    off.remember_selection("llm", "q", "llm/x")
    off.put_metric_body("llm/llama-70b", entry, DESIRED, b"{}")
    off.put_workload_parts("llm/llama-70b", entry, b"{", b"}")
    assert off.sizes() == {"selections": 0, "metric_bodies": 0, "workload_documents": 0}
    with pytest.raises(ValueError):
        ResponseCache(max_selectors=-1)


@pytest.mark.asyncio
async def test_distinct_selectors_over_http_stay_within_the_bound(pair):
    bounded = ResponseCache(max_selectors=20)
    app = create_api_app(pair.store, None)
    app[RESPONSES] = bounded
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        for i in range(200):
            selector = f"workload=llama-70b,n!={i}"  # valid, distinct, all name one workload
            async with client.get(
                f"{PREFIX}/namespaces/llm/{FORECAST}", params={"labelSelector": selector}
            ) as resp:
                assert resp.status == 200
            async with client.get(
                f"{PREFIX}/namespaces/llm/{FORECAST}", params={"labelSelector": f"junk({i}"}
            ) as resp:
                assert resp.status == 400
    finally:
        await client.close()
    assert bounded.sizes()["selections"] == 20
    assert bounded.sizes()["metric_bodies"] == 1


def test_accept_memo_is_bounded_and_answers_like_accepts_json():
    memo = AcceptMemo(max_size=4)
    headers = [None, "", "application/json", "text/html", "application/json;q=0"]
    headers += [f"application/x-{i}, */*;q=0.{i % 10}" for i in range(100)]
    for header in headers * 2:
        assert memo(header) is accepts_json(header)
        assert len(memo) <= 4

"""The HTTPS app with auth off, over real TLS: the requests the kube-aggregator and the HPA
controller send (PROTOCOLS.md §1), the JSON API, and every error as a Kubernetes Status."""

from __future__ import annotations

import json
import ssl
from decimal import Decimal

import aiohttp
import pytest
import pytest_asyncio
import yarl

from autoscaler.core.current_autoscaler import CurrentAutoscaler
from autoscaler.engines.guards import guards_of
from autoscaler.engines.registry import ENGINES
from autoscaler.live.store import WorkloadInfo
from external_metrics import selectors
from external_metrics.app import create_api_app
from external_metrics.quantity import parse_quantity
from tests.external_metrics_support import (
    DESIRED,
    FORECAST,
    LOAD,
    METRICS,
    Clock,
    make_pki,
    make_store,
    put_fresh,
    put_hold,
    serving,
)

PREFIX = "/apis/external.metrics.k8s.io/v1beta1"
HPA_HEADERS = {
    # client-go: Accept is "<ContentType>, */*", and kube-controller-manager uses protobuf
    "Accept": "application/vnd.kubernetes.protobuf, */*",
    "User-Agent": "kube-controller-manager/v1.33.1 (linux/amd64) kubernetes/8adc0f0/"
    "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
    "Accept-Encoding": "gzip",
}
AGGREGATED_DISCOVERY_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json"
)

WORKLOADS = [
    WorkloadInfo("llm", "llama-70b", {"workload": "llama-70b", "model": "llama", "tier": "gold"}),
    WorkloadInfo("llm", "llama-8b", {"workload": "llama-8b", "model": "llama", "tier": "silver"}),
    WorkloadInfo(
        "llm",
        "mistral",
        {"workload": "mistral", "model": "mistral"},
        shadow=True,
        engine="tgi",
        guards={g.value: r for g, r in guards_of(ENGINES["tgi"]).items()},
    ),
    WorkloadInfo("solo", "bloom", {"workload": "bloom"}),
    WorkloadInfo("llm", "fresh-never", {"workload": "fresh-never"}),
]


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(clock):
    s = make_store(WORKLOADS, clock)
    put_fresh(s, "llm/llama-70b", desired=3, load=2.5, forecast=2.75)
    put_fresh(s, "llm/llama-8b", desired=1, load=0.4, forecast=0.6)
    put_fresh(s, "llm/mistral", desired=5, load=4.2, forecast=4.9)
    put_fresh(s, "solo/bloom", desired=2, load=1.0005, forecast=1.5)
    s.set_current("llm/mistral", CurrentAutoscaler("HorizontalPodAutoscaler", "mistral", 4, 7))
    return s


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


class Api:
    """A real HTTPS client against the served app."""

    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base = base
        self.session = session

    async def get(self, path: str, headers=None, params=None, method: str = "GET"):
        async with self.session.request(
            method, self.base + path, headers=headers, params=params
        ) as resp:
            text = await resp.text()
            body = json.loads(text) if text else None
            return resp.status, resp.headers.get("Content-Type", ""), body


@pytest_asyncio.fixture
async def api(store, pki):
    app = create_api_app(store, None)
    async with serving(app, pki.server_context(verify_clients=False)) as base:
        connector = aiohttp.TCPConnector(ssl=pki.client_context())
        async with aiohttp.ClientSession(connector=connector) as session:
            yield Api(base, session)


def assert_status(body, code: int, reason: str) -> None:
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == code
    assert body["reason"] == reason
    assert body["message"]


def hpa_usage_milli(body) -> int:
    """What the HPA does with the list: sum MilliValue() over all items (§2)."""
    return sum(int(parse_quantity(item["value"]) * 1000) for item in body["items"])


# --- aggregator ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_availability_check_and_legacy_discovery_list_every_metric(api):
    status, ctype, body = await api.get(PREFIX, headers={"Accept": "application/json"})
    assert status == 200
    assert ctype == "application/json"
    assert body["kind"] == "APIResourceList"
    assert body["apiVersion"] == "v1"
    assert body["groupVersion"] == "external.metrics.k8s.io/v1beta1"
    assert [r["name"] for r in body["resources"]] == list(METRICS)
    for r in body["resources"]:
        assert r == {
            "name": r["name"],
            "singularName": "",
            "namespaced": True,
            "kind": "ExternalMetricValueList",
            "verbs": ["get"],
        }


@pytest.mark.asyncio
async def test_availability_check_without_accept_header_passes(api):
    # the availability prober sends a bare GET; any 2xx keeps the APIService Available
    async with api.session.get(api.base + PREFIX, skip_auto_headers=["Accept"]) as resp:
        assert resp.status == 200


@pytest.mark.asyncio
async def test_empty_metric_list_is_a_valid_resource_list(pki, clock):
    store = make_store(WORKLOADS, clock, metric_names=())
    async with serving(create_api_app(store, None), pki.server_context(verify_clients=False)) as b:
        connector = aiohttp.TCPConnector(ssl=pki.client_context())
        async with aiohttp.ClientSession(connector=connector) as session:
            status, _, body = await Api(b, session).get(PREFIX)
    assert status == 200
    assert body["resources"] == []


@pytest.mark.asyncio
async def test_apis_answers_a_plain_group_list_so_the_aggregator_falls_back(api):
    status, ctype, body = await api.get("/apis", headers={"Accept": AGGREGATED_DISCOVERY_ACCEPT})
    assert status == 200
    # not "application/json;g=apidiscovery.k8s.io;...": the aggregator then uses the legacy path
    assert ctype == "application/json"
    assert body["kind"] == "APIGroupList"
    (group,) = body["groups"]
    assert group["name"] == "external.metrics.k8s.io"
    assert group["preferredVersion"]["groupVersion"] == "external.metrics.k8s.io/v1beta1"
    status, _, body = await api.get("/apis/external.metrics.k8s.io")
    assert status == 200
    assert body["kind"] == "APIGroup"
    assert body["versions"] == [{"groupVersion": "external.metrics.k8s.io/v1beta1",
                                 "version": "v1beta1"}]  # fmt: skip


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "path", ["/openapi/v2", "/openapi/v3", "/openapi/v3/apis/external.metrics.k8s.io/v1beta1"]
)
async def test_openapi_paths_are_404_so_the_aggregator_skips_them(api, path):
    status, ctype, body = await api.get(path, headers={"Accept": "application/json"})
    assert status == 404
    assert ctype == "application/json"
    assert_status(body, 404, "NotFound")


# --- HPA ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("metric", "value", "milli"),
    [(DESIRED, "3000m", 3000), (LOAD, "2500m", 2500), (FORECAST, "2750m", 2750)],
)
async def test_hpa_request_gets_one_item_in_milli_units(api, metric, value, milli):
    status, ctype, body = await api.get(
        f"{PREFIX}/namespaces/llm/{metric}",
        headers=HPA_HEADERS,
        params={"labelSelector": "workload=llama-70b"},
    )
    assert status == 200
    assert ctype == "application/json"  # protobuf is not served; */* lets JSON through
    assert body["kind"] == "ExternalMetricValueList"
    assert body["apiVersion"] == "external.metrics.k8s.io/v1beta1"
    assert body["metadata"] == {}
    (item,) = body["items"]
    assert item["metricName"] == metric
    assert item["metricLabels"] == {"workload": "llama-70b", "model": "llama", "tier": "gold"}
    assert item["timestamp"] == "2025-10-09T08:53:20Z"
    assert item["value"] == value
    assert hpa_usage_milli(body) == milli


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "selector",
    [
        "workload=llama-70b",
        "workload==llama-70b",
        "model=llama,tier=gold",
        "model in (llama),tier notin (silver)",
        "tier,!missing,tier!=silver",
        "model=llama,tier!=silver",
        "workload in (llama-70b, nothing-else)",
    ],
)
async def test_every_selector_form_the_hpa_can_send_picks_the_workload(api, selector):
    status, _, body = await api.get(
        f"{PREFIX}/namespaces/llm/{DESIRED}",
        headers=HPA_HEADERS,
        params={"labelSelector": selector},
    )
    assert status == 200, body
    assert body["items"][0]["metricLabels"]["workload"] == "llama-70b"


@pytest.mark.asyncio
async def test_selector_encoded_as_client_go_sends_it(api):
    # url.Values.Encode(): spaces as '+', parentheses and commas percent-encoded
    raw = (
        f"{api.base}{PREFIX}/namespaces/llm/{DESIRED}"
        "?labelSelector=model+in+%28llama%29%2Ctier+notin+%28silver%29"
    )
    async with api.session.get(yarl.URL(raw, encoded=True), headers=HPA_HEADERS) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["items"][0]["metricLabels"]["workload"] == "llama-70b"


@pytest.mark.asyncio
async def test_value_rounds_to_the_nearest_milli_unit(api):
    status, _, body = await api.get(
        f"{PREFIX}/namespaces/solo/{LOAD}", headers=HPA_HEADERS, params={"labelSelector": ""}
    )
    assert status == 200  # the only workload of the namespace: an empty selector names it
    assert body["items"][0]["value"] == "1001m"  # 1.0005 -> half away from zero
    assert parse_quantity(body["items"][0]["value"]) == Decimal("1.001")


@pytest.mark.asyncio
async def test_unknown_metric_is_404(api):
    status, _, body = await api.get(
        f"{PREFIX}/namespaces/llm/llm_made_up", params={"labelSelector": "workload=llama-70b"}
    )
    assert status == 404
    assert_status(body, 404, "NotFound")
    assert "llm_made_up" in body["message"]
    assert body["details"]["group"] == "external.metrics.k8s.io"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "selector", ["workload in (a", "=x", "a b", "Bad_/k=v", "workload=llama-70b,", "k>x"]
)
async def test_bad_selector_is_400_with_the_parsers_message(api, selector):
    with pytest.raises(selectors.SelectorError) as parsed:
        selectors.parse(selector)
    status, _, body = await api.get(
        f"{PREFIX}/namespaces/llm/{DESIRED}", params={"labelSelector": selector}
    )
    assert status == 400
    assert_status(body, 400, "BadRequest")
    assert body["message"] == str(parsed.value)


@pytest.mark.asyncio
async def test_selector_matching_two_workloads_is_400_because_the_hpa_would_sum(api):
    status, _, body = await api.get(
        f"{PREFIX}/namespaces/llm/{DESIRED}", params={"labelSelector": "model=llama"}
    )
    assert status == 400
    assert_status(body, 400, "BadRequest")
    assert "matches 2 workloads" in body["message"]
    assert "llama-70b" in body["message"] and "llama-8b" in body["message"]


@pytest.mark.asyncio
async def test_selector_matching_nothing_is_400(api):
    status, _, body = await api.get(
        f"{PREFIX}/namespaces/llm/{DESIRED}", params={"labelSelector": "workload=nope"}
    )
    assert status == 400
    assert "matches no workload" in body["message"]


@pytest.mark.asyncio
async def test_path_namespace_must_be_the_workloads_namespace(api):
    status, _, body = await api.get(
        f"{PREFIX}/namespaces/other/{DESIRED}", params={"labelSelector": "workload=llama-70b"}
    )
    assert status == 400
    assert 'no workload in namespace "other"' in body["message"]
    assert "llm/llama-70b" in body["message"]  # says where it is


@pytest.mark.asyncio
async def test_stale_data_is_503_never_a_value(api, clock):
    clock.now += 61  # staleness bound is 60 s
    status, _, body = await api.get(
        f"{PREFIX}/namespaces/llm/{DESIRED}",
        headers=HPA_HEADERS,
        params={"labelSelector": "workload=llama-70b"},
    )
    assert status == 503
    assert_status(body, 503, "ServiceUnavailable")
    assert "stale" in body["message"] and "61 s old" in body["message"]
    assert "items" not in body


@pytest.mark.asyncio
async def test_a_held_tick_is_503_and_says_why(api, store):
    put_hold(store, "llm/llama-70b", "Prometheus query failed: connection refused")
    status, _, body = await api.get(
        f"{PREFIX}/namespaces/llm/{LOAD}", params={"labelSelector": "workload=llama-70b"}
    )
    assert status == 503
    assert "connection refused" in body["message"]


@pytest.mark.asyncio
async def test_no_data_yet_is_503(api):
    status, _, body = await api.get(
        f"{PREFIX}/namespaces/llm/{DESIRED}", params={"labelSelector": "workload=fresh-never"}
    )
    assert status == 503
    assert_status(body, 503, "ServiceUnavailable")
    assert "no recommendation yet" in body["message"]


@pytest.mark.asyncio
async def test_a_metric_missing_from_the_recommendation_is_503(api, store):
    put_fresh(store, "llm/llama-8b", metrics={DESIRED: 1.0})
    status, _, body = await api.get(
        f"{PREFIX}/namespaces/llm/{FORECAST}", params={"labelSelector": "workload=llama-8b"}
    )
    assert status == 503
    assert FORECAST in body["message"]


@pytest.mark.asyncio
async def test_no_retry_after_header_on_503(api, clock):
    clock.now += 3600
    async with api.session.get(
        f"{api.base}{PREFIX}/namespaces/llm/{DESIRED}",
        params={"labelSelector": "workload=llama-70b"},
    ) as resp:
        assert resp.status == 503
        assert "Retry-After" not in resp.headers  # client-go would retry inside one HPA sync


# --- negotiation, routing -----------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("application/json", 200),
        ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json", 200),
        ("*/*", 200),
        ("application/*;q=0.5", 200),
        ("application/vnd.kubernetes.protobuf", 406),
        ("text/html", 406),
        ("application/json;q=0", 406),
    ],
)
async def test_accept_header(api, accept, status):
    got, ctype, body = await api.get(PREFIX, headers={"Accept": accept})
    assert got == status
    assert ctype == "application/json"
    if status == 406:
        assert_status(body, 406, "NotAcceptable")


@pytest.mark.asyncio
async def test_unknown_path_and_wrong_method_are_statuses(api):
    status, _, body = await api.get("/apis/metrics.k8s.io/v1beta1")
    assert status == 404
    assert_status(body, 404, "NotFound")
    status, _, body = await api.get(PREFIX, method="POST")
    assert status == 405
    assert_status(body, 405, "MethodNotAllowed")


@pytest.mark.asyncio
async def test_head_is_answered_like_get(api):
    async with api.session.head(api.base + PREFIX) as resp:
        assert resp.status == 200


# --- JSON API -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_workload_list_shows_everything_with_its_freshness(api, clock, store):
    clock.now += 30
    put_fresh(store, "llm/llama-8b")
    clock.now += 40  # llama-70b is now 70 s old, llama-8b 40 s
    status, _, body = await api.get("/v1/workloads")
    assert status == 200
    by_key = {w["key"]: w for w in body["workloads"]}
    assert sorted(by_key) == sorted(w.key for w in WORKLOADS)
    assert by_key["llm/llama-70b"]["freshness"] == "stale"
    assert by_key["llm/llama-70b"]["age_s"] == pytest.approx(70)
    assert by_key["llm/llama-70b"]["desired_replicas"] == 3  # last known, labelled stale
    assert by_key["llm/llama-8b"]["freshness"] == "fresh"
    assert by_key["llm/fresh-never"]["freshness"] == "no-data"
    assert by_key["llm/fresh-never"]["age_s"] is None
    assert body["staleness_s"] == 60
    status, _, body = await api.get("/v1/workloads", params={"namespace": "solo"})
    assert [w["key"] for w in body["workloads"]] == ["solo/bloom"]


@pytest.mark.asyncio
async def test_one_workload_has_recommendation_signals_and_shadow(api):
    status, _, doc = await api.get("/v1/workloads/llm/mistral")
    assert status == 200
    assert doc["desired_replicas"] == 5
    assert doc["winner"] == "forecast"
    assert doc["metrics"] == {DESIRED: 5, LOAD: 4.2, FORECAST: 4.9}
    reasons = [c["reason"] for c in doc["recommendation"]["candidates"]]
    assert reasons == ["forecast", "latency"]
    assert doc["recommendation"]["candidates"][0]["detail"].startswith("p99 demand")
    assert doc["signals"]["replicas"]["ready"] == 3
    assert doc["signals"]["ttft_p90_s"] == 0.42
    assert doc["signals"]["per_replica_waiting"] == [0.0, 1.0, 0.0]
    assert doc["signals"]["gpu_memory_usage_max"] == 0.7
    assert doc["signals"]["per_replica_gpu_memory_usage"] == [0.5, 0.6, 0.7]
    assert doc["engine"] == "tgi"
    assert doc["recommendation"]["fallbacks"] == ["mean_output_tokens = seed mean output tokens"]
    assert doc["guards"]["saturation"] == ["kv_usage", "waiting", "gpu_memory_usage_max"]
    assert doc["guards"]["latency"] == ["queue_time_p90_s"]
    assert doc["shadow"] == {
        "enabled": True,
        "current_autoscaler": {
            "kind": "HorizontalPodAutoscaler",
            "name": "mistral",
            "current_replicas": 4,
            "desired_replicas": 7,
        },
        "ours": 5,
        "theirs": 7,
        "difference": -2,
    }
    assert doc["updated_at"] == "2025-10-09T08:53:20Z"


@pytest.mark.asyncio
async def test_stale_workload_is_503_with_last_known_in_details(api, clock, store):
    put_hold(store, "llm/llama-70b", "no samples newer than 90 s")
    status, _, body = await api.get("/v1/workloads/llm/llama-70b")
    assert status == 503
    assert_status(body, 503, "ServiceUnavailable")
    last = body["details"]["lastKnown"]
    assert last["freshness"] == "stale"
    assert last["desired_replicas"] == 3  # the last good value, for people
    assert last["latest"]["holds"] is True
    assert last["latest"]["candidates"][0]["replicas"] is None  # nan -> null, still valid JSON
    assert last["latest"]["candidates"][0]["detail"] == "no samples newer than 90 s"


@pytest.mark.asyncio
async def test_keda_metrics_api_value_location(api):
    """KEDA's metrics-api trigger reads GJSON ``metrics.llm_desired_replicas``."""
    status, _, doc = await api.get("/v1/workloads/llm/llama-70b")
    assert status == 200
    assert doc["metrics"]["llm_desired_replicas"] == 3


@pytest.mark.asyncio
async def test_unknown_workload_is_404(api):
    status, _, body = await api.get("/v1/workloads/llm/nope")
    assert status == 404
    assert_status(body, 404, "NotFound")
    assert "llm/nope" in body["message"]


@pytest.mark.asyncio
async def test_openapi_document_is_served(api):
    status, _, doc = await api.get("/v1/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {"/v1/workloads", "/v1/workloads/{namespace}/{name}",
                                 "/v1/openapi.json"}  # fmt: skip


# --- TLS ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_tls_is_at_least_1_2_and_plain_http_is_refused(api, pki):
    ctx = pki.server_context(verify_clients=False)
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    tls12 = pki.client_context()
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls12)) as session:
        async with session.get(api.base + PREFIX) as resp:
            assert resp.status == 200
    plain = api.base.replace("https://", "http://")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.get(plain + PREFIX) as resp:
                await resp.read()

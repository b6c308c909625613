"""Delegated authn/authz over real TLS, with kmock's KubernetesEmulator as the API server that
answers the TokenReviews and SubjectAccessReviews and holds the requestheader ConfigMap, reached
through the real ``kubernetes`` client."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable

import aiohttp
import kmock
import pytest
import pytest_asyncio
from kmock import KubernetesError as KmockError
from multidict import CIMultiDict

from autoscaler.cli.authenticator import build_authenticator
from autoscaler.clients.kube import KubernetesError, build_api_client, reviews
from autoscaler.live.store import WorkloadInfo
from external_metrics.app import create_api_app
from external_metrics.auth import AuthConfig, Authenticator
from external_metrics.tls import server_ssl_context
from external_metrics.ttl_cache import TTLCache
from tests.external_metrics_support import (
    DESIRED,
    Clock,
    Pki,
    make_pki,
    make_store,
    put_fresh,
    serving,
)

TOKENREVIEWS = kmock.resource("authentication.k8s.io", "v1", "tokenreviews")
ACCESSREVIEWS = kmock.resource("authorization.k8s.io", "v1", "subjectaccessreviews")
CONFIGMAPS = kmock.resource("", "v1", "configmaps")
PREFIX = "/apis/external.metrics.k8s.io/v1beta1"
METRIC_PATH = f"{PREFIX}/namespaces/llm/{DESIRED}?labelSelector=workload%3Dllama-70b"
HPA_USER = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
HPA_GROUPS = ["system:serviceaccounts", "system:serviceaccounts:kube-system",
              "system:authenticated"]  # fmt: skip
CREDENTIAL_ID = "JTI=7c0e4a0e-9c1f-4f0e-8a55-1d2b3c4d5e6f"


def proxied_hpa_headers() -> CIMultiDict[str]:
    """What kube-apiserver adds when it proxies the HPA's request to us (plus the HPA's own)."""
    headers: CIMultiDict[str] = CIMultiDict()
    headers.add("Accept", "application/vnd.kubernetes.protobuf, */*")
    headers.add("User-Agent", "kube-controller-manager/v1.33.1 (linux/amd64) kubernetes/8adc0f0")
    headers.add("X-Remote-User", HPA_USER)
    for group in HPA_GROUPS:
        headers.add("X-Remote-Group", group)
    headers.add("X-Remote-Extra-Authentication.kubernetes.io%2fcredential-id", CREDENTIAL_ID)
    headers.add("X-Forwarded-For", "10.0.0.17")
    return headers


class Cluster:
    """kmock programmed as the cluster's API server: who each token is, and who may do what."""

    def __init__(self, server: kmock.KubernetesEmulator, pki: Pki) -> None:
        self.server = server
        self.tokens: dict[str, dict[str, object]] = {}
        self.policy: Callable[[dict[str, object]], bool] = lambda spec: True
        self.token_reviews: list[dict[str, object]] = []
        self.access_reviews: list[dict[str, object]] = []
        server["post", TOKENREVIEWS] << self._token_review
        server["post", ACCESSREVIEWS] << self._access_review
        server.objects[CONFIGMAPS, "kube-system", "extension-apiserver-authentication"] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
            "data": {
                "client-ca-file": pki.proxy_ca_pem,  # not used by us: tokens go to TokenReview
                "requestheader-client-ca-file": pki.proxy_ca_pem,
                "requestheader-allowed-names": '["front-proxy-client"]',
                "requestheader-username-headers": '["X-Remote-User"]',
                "requestheader-group-headers": '["X-Remote-Group"]',
                "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
            },
        }

    def _forget(self, resource: kmock.resource) -> None:
        # reviews are never stored by a real API server; the emulator would 409 the next one
        del self.server.objects[resource, None, None]

    def _token_review(self, request: kmock.Request) -> dict[str, object]:
        self._forget(TOKENREVIEWS)
        spec = request.data["spec"]
        self.token_reviews.append(spec)
        user = self.tokens.get(spec["token"])
        status: dict[str, object] = (
            {"authenticated": True, "user": user}
            if user is not None
            else {"authenticated": False, "error": "invalid bearer token"}
        )
        return {**request.data, "status": status}

    def _access_review(self, request: kmock.Request) -> dict[str, object]:
        self._forget(ACCESSREVIEWS)
        spec = request.data["spec"]
        self.access_reviews.append(spec)
        allowed = self.policy(spec)
        status: dict[str, object] = {"allowed": allowed}
        if not allowed:
            status["reason"] = "no RBAC policy matched"
        return {**request.data, "status": status}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def cluster(kmock, pki):
    return Cluster(kmock, pki)


@pytest.fixture
def api_client(kmock):
    api = build_api_client(host=str(kmock.url))
    yield api
    api.close()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(clock):
    s = make_store([WorkloadInfo("llm", "llama-70b", {"workload": "llama-70b"})], clock)
    put_fresh(s, "llm/llama-70b", desired=4)
    return s


class Server:
    def __init__(self, base: str, pki: Pki) -> None:
        self.base = base
        self.pki = pki

    async def get(
        self, path: str, *, cert=None, headers=None, ctx: ssl.SSLContext | None = None
    ) -> tuple[int, dict[str, object]]:
        connector = aiohttp.TCPConnector(ssl=ctx or self.pki.client_context(cert))
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(self.base + path, headers=headers) as resp:
                return resp.status, json.loads(await resp.text())


@pytest_asyncio.fixture
async def served(cluster, api_client, store, pki):
    """The app as ``serve`` builds it: authenticator from the ConfigMap, TLS with its CA."""
    auth = await asyncio.to_thread(build_authenticator, api_client, AuthConfig())
    assert auth is not None and auth.client_ca_pem == pki.proxy_ca_pem
    ctx = server_ssl_context(pki.server_cert, pki.server_key, client_ca_pem=auth.client_ca_pem)
    async with serving(create_api_app(store, auth), ctx) as base:
        yield Server(base, pki)


# --- front proxy (the kube-aggregator) ----------------------------------------------------------


@pytest.mark.asyncio
async def test_hpa_request_through_the_aggregator_is_reviewed_as_a_metric_list(
    served, cluster, pki
):
    status, body = await served.get(
        METRIC_PATH, cert=pki.front_proxy, headers=proxied_hpa_headers()
    )
    assert status == 200, body
    assert body["items"][0]["value"] == "4000m"
    assert cluster.token_reviews == []
    (spec,) = cluster.access_reviews
    assert spec["user"] == HPA_USER
    assert spec["groups"] == HPA_GROUPS
    assert spec["extra"] == {"authentication.kubernetes.io/credential-id": [CREDENTIAL_ID]}
    assert spec["resourceAttributes"] == {
        "group": "external.metrics.k8s.io",
        "version": "v1beta1",
        "resource": DESIRED,
        "namespace": "llm",
        "verb": "list",
    }
    assert "nonResourceAttributes" not in spec


@pytest.mark.asyncio
async def test_availability_check_needs_no_access_review(served, cluster, pki):
    headers = CIMultiDict([("X-Remote-User", "system:kube-aggregator"),
                           ("X-Remote-Group", "system:masters")])  # fmt: skip
    status, body = await served.get(PREFIX, cert=pki.front_proxy, headers=headers)
    assert status == 200
    assert body["kind"] == "APIResourceList"
    # discovery and OpenAPI: authentication only (the aggregator's own requests have no groups)
    status, body = await served.get(
        "/openapi/v2",
        cert=pki.front_proxy,
        headers={"X-Remote-User": "system:aggregator", "Accept": "application/json"},
    )
    assert status == 404
    assert cluster.access_reviews == []


@pytest.mark.asyncio
async def test_denied_access_review_is_403_status(served, cluster, pki):
    cluster.policy = lambda spec: False
    status, body = await served.get(
        METRIC_PATH, cert=pki.front_proxy, headers=proxied_hpa_headers()
    )
    assert status == 403
    assert body["kind"] == "Status" and body["reason"] == "Forbidden"
    assert body["message"] == (
        f'forbidden: User "{HPA_USER}" cannot list resource "{DESIRED}" in API group '
        '"external.metrics.k8s.io" in the namespace "llm": no RBAC policy matched'
    )


@pytest.mark.asyncio
async def test_identity_headers_without_a_client_certificate_are_ignored(served, cluster):
    status, body = await served.get(METRIC_PATH, headers=proxied_hpa_headers())
    assert status == 401
    assert body["kind"] == "Status" and body["reason"] == "Unauthorized"
    assert cluster.access_reviews == []


@pytest.mark.asyncio
async def test_a_certificate_with_a_cn_not_allowed_does_not_make_headers_trusted(
    served, cluster, pki
):
    status, body = await served.get(METRIC_PATH, cert=pki.other_cn, headers=proxied_hpa_headers())
    assert status == 401
    assert cluster.access_reviews == []


@pytest.mark.asyncio
async def test_a_certificate_from_another_ca_fails_the_handshake(served, cluster, pki):
    with pytest.raises(aiohttp.ClientError):
        await served.get(METRIC_PATH, cert=pki.rogue, headers=proxied_hpa_headers())
    assert cluster.access_reviews == []


@pytest.mark.asyncio
async def test_front_proxy_without_a_user_header_falls_back_to_the_token(served, cluster, pki):
    cluster.tokens["t-keda"] = {"username": "system:serviceaccount:keda:keda-operator"}
    status, _ = await served.get(
        METRIC_PATH, cert=pki.front_proxy, headers={"Authorization": "Bearer t-keda"}
    )
    assert status == 200
    assert cluster.access_reviews[0]["user"] == "system:serviceaccount:keda:keda-operator"


# --- bearer tokens ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_bearer_token_is_reviewed_then_authorized(served, cluster):
    cluster.tokens["t-alice"] = {"username": "alice", "uid": "u-1", "groups": ["devs"]}
    status, body = await served.get("/v1/workloads/llm/llama-70b",
                                    headers={"Authorization": "Bearer t-alice"})  # fmt: skip
    assert status == 200, body
    assert body["desired_replicas"] == 4
    assert [r["token"] for r in cluster.token_reviews] == ["t-alice"]
    (spec,) = cluster.access_reviews
    assert spec["user"] == "alice" and spec["uid"] == "u-1" and spec["groups"] == ["devs"]
    assert spec["nonResourceAttributes"] == {"path": "/v1/workloads/llm/llama-70b", "verb": "get"}


@pytest.mark.asyncio
async def test_invalid_or_missing_token_is_401(served, cluster):
    status, body = await served.get("/v1/workloads", headers={"Authorization": "Bearer nope"})
    assert status == 401
    assert body["reason"] == "Unauthorized"
    assert "not valid" in body["message"]
    status, _ = await served.get("/v1/workloads", headers={"Authorization": "Basic YTpi"})
    assert status == 401
    status, _ = await served.get("/v1/workloads")
    assert status == 401
    assert [r["token"] for r in cluster.token_reviews] == ["nope"]  # only Bearer is asked about
    assert cluster.access_reviews == []


@pytest.mark.asyncio
async def test_failing_token_review_is_401_and_failing_access_review_is_500(served, cluster, kmock):
    kmock["post", TOKENREVIEWS] ** 10 << KmockError(status=500, message="etcd down")
    status, body = await served.get("/v1/workloads", headers={"Authorization": "Bearer t-x"})
    assert status == 401
    assert "could not be verified" in body["message"]

    kmock["post", ACCESSREVIEWS] ** 10 << KmockError(status=503, message="no")
    status, body = await served.get(METRIC_PATH, cert=served.pki.front_proxy,
                                    headers=proxied_hpa_headers())  # fmt: skip
    assert status == 500
    assert body["reason"] == "InternalError"
    assert "etcd" not in body["message"]  # nothing internal leaks


@pytest.mark.asyncio
async def test_review_answers_are_cached_for_the_ttl(cluster, api_client, store, pki):
    clock = Clock(0.0)
    settings = await asyncio.to_thread(reviews.read_requestheader_settings, api_client)
    auth = Authenticator(
        reviews.KubeReviewer(api_client), settings, cache_ttl_s=10, cache_size=16, clock=clock
    )
    cluster.tokens["t-bob"] = {"username": "bob"}
    ctx = pki.server_context(verify_clients=True)
    async with serving(create_api_app(store, auth), ctx) as base:
        server = Server(base, pki)
        for _ in range(3):
            status, _ = await server.get(METRIC_PATH, headers={"Authorization": "Bearer t-bob"})
            assert status == 200
        assert len(cluster.token_reviews) == 1
        assert len(cluster.access_reviews) == 1
        clock.now = 10.5
        status, _ = await server.get(METRIC_PATH, headers={"Authorization": "Bearer t-bob"})
        assert status == 200
        assert len(cluster.token_reviews) == 2
        assert len(cluster.access_reviews) == 2


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_insecure_skip_auth_builds_no_authenticator(api_client, kmock):
    assert (
        await asyncio.to_thread(
            build_authenticator, api_client, AuthConfig(insecure_skip_auth=True)
        )
        is None
    )
    assert list(kmock) == []  # and asks the cluster nothing


@pytest.mark.asyncio
async def test_unreadable_configmap_says_which_role_is_missing(api_client, kmock):
    kmock["get", CONFIGMAPS] << KmockError(
        status=403, reason="Forbidden", message='configmaps "extension-apiserver-authentication"'
        ' is forbidden'
    )  # fmt: skip
    with pytest.raises(KubernetesError) as err:
        await asyncio.to_thread(build_authenticator, api_client, AuthConfig())
    assert err.value.status == 403
    assert "extension-apiserver-authentication-reader" in str(err.value)


def test_requestheader_settings_parse_json_arrays_and_defaults(pki):
    data = {
        "requestheader-client-ca-file": pki.proxy_ca_pem,
        "requestheader-allowed-names": '["front-proxy-client","aggregator"]',
        "requestheader-group-headers": '["X-Remote-Group","X-Groups"]',
    }
    s = reviews.parse_requestheader_settings(data)
    assert s is not None
    assert s.allowed_names == ("front-proxy-client", "aggregator")
    assert s.group_headers == ("X-Remote-Group", "X-Groups")
    assert s.username_headers == ("X-Remote-User",)
    assert s.extra_headers_prefixes == ("X-Remote-Extra-",)
    assert reviews.parse_requestheader_settings({"client-ca-file": pki.proxy_ca_pem}) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"requestheader-client-ca-file": "not a pem"}, "holds no PEM certificate"),
        ({"requestheader-allowed-names": "front-proxy-client"}, "is not a JSON array"),
        ({"requestheader-allowed-names": '{"a": 1}'}, "must be a JSON array of strings"),
        ({"requestheader-username-headers": "[1]"}, "must be a JSON array of strings"),
    ],
)
def test_bad_requestheader_settings_say_which_key(pki, data, message):
    full = {"requestheader-client-ca-file": pki.proxy_ca_pem, **data}
    with pytest.raises(KubernetesError, match=message):
        reviews.parse_requestheader_settings(full, source="ConfigMap kube-system/x")


def test_ttl_cache_expires_and_evicts_least_recently_used():
    clock = Clock(0.0)
    cache: TTLCache[str, int] = TTLCache(ttl_s=10, max_size=2, clock=clock)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)  # evicts b
    assert cache.get("b") is None
    assert cache.get("a") == 1 and cache.get("c") == 3
    clock.now = 10.0
    assert cache.get("a") is None
    assert len(cache) == 1
    with pytest.raises(ValueError, match="must be >= 0"):
        TTLCache(ttl_s=-1, max_size=1, clock=clock)

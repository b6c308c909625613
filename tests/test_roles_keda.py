"""KEDA triggers for a workload with roles, over real gRPC: ``role`` metadata picks the role's
target; a missing or wrong role is one clear error (INVALID_ARGUMENT / NOT_FOUND), never a value
of the other role."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from autoscaler.core.recommendation import PublishedMetric, Recommendation
from autoscaler.live.store import RecommendationStore, WorkloadInfo
from external_metrics.keda import externalscaler_pb2 as pb
from external_metrics.keda import externalscaler_pb2_grpc as pb_grpc
from external_metrics.keda.errors import BadMetadata
from external_metrics.keda.metadata import parse_scaler_metadata
from external_metrics.keda.server import create_grpc_server

T = 1_000.0
DESIRED = "llm_desired_replicas"
INFOS = [
    WorkloadInfo("llm", "pd-prefill", {"namespace": "llm", "workload": "pd", "role": "prefill"}),
    WorkloadInfo("llm", "pd-decode", {"namespace": "llm", "workload": "pd", "role": "decode"}),
    WorkloadInfo("llm", "chat", {"namespace": "llm", "workload": "chat"}),
]


@pytest.fixture
def stub() -> Iterator[pb_grpc.ExternalScalerStub]:
    store = RecommendationStore(INFOS, staleness_s=60.0, clock=lambda: T)
    for key, n in (("llm/pd-prefill", 7), ("llm/pd-decode", 3), ("llm/chat", 2)):
        store.put(
            Recommendation(
                workload=key,
                timestamp=T,
                desired_replicas=n,
                winner="test",
                metrics=(PublishedMetric(DESIRED, float(n)),),
            )
        )
    server = create_grpc_server(store, "127.0.0.1:0", tls=None)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield pb_grpc.ExternalScalerStub(channel)
    channel.close()
    server.stop(None).wait(10)


def value(stub: pb_grpc.ExternalScalerStub, **metadata: str) -> int:
    ref = pb.ScaledObjectRef(name="so", namespace="llm", scalerMetadata=metadata)
    req = pb.GetMetricsRequest(scaledObjectRef=ref, metricName=DESIRED)
    (item,) = stub.GetMetrics(req, timeout=10).metricValues
    return int(item.metricValue)


def error(stub: pb_grpc.ExternalScalerStub, **metadata: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        value(stub, **metadata)
    return info.value


def test_role_metadata_picks_each_roles_value(stub):
    assert value(stub, workload="llm/pd", role="prefill") == 7
    assert value(stub, name="pd", role="decode") == 3
    assert value(stub, workload="chat") == 2  # aggregated: no role, as before
    spec = stub.GetMetricSpec(
        pb.ScaledObjectRef(
            name="so", namespace="llm", scalerMetadata={"workload": "pd", "role": "decode"}
        ),
        timeout=10,
    )
    assert [m.metricName for m in spec.metricSpecs] == [DESIRED]


@pytest.mark.parametrize(
    ("metadata", "code", "words"),
    [
        ({"workload": "llm/pd"}, grpc.StatusCode.INVALID_ARGUMENT, "has roles (decode, prefill)"),
        ({"workload": "pd", "role": "encode"}, grpc.StatusCode.INVALID_ARGUMENT, "not a role"),
        ({"workload": "chat", "role": "prefill"}, grpc.StatusCode.NOT_FOUND, "role prefill"),
    ],
)
def test_a_missing_or_wrong_role_is_one_clear_error(stub, metadata, code, words):
    err = error(stub, **metadata)
    assert err.code() == code
    assert words in (err.details() or "")


def test_role_is_parsed_and_checked_with_the_key_named():
    target = parse_scaler_metadata(
        "llm", {"workload": "pd", "role": " decode "}, metrics=[DESIRED], default_metric=DESIRED
    )
    assert (target.name, target.role) == ("pd", "decode")
    with pytest.raises(BadMetadata) as info:
        parse_scaler_metadata(
            "llm", {"workload": "pd", "role": "Prefill"}, metrics=[DESIRED], default_metric=DESIRED
        )
    assert info.value.key == "role"

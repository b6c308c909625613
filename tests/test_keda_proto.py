"""The KEDA wire contract: the .proto matches PROTOCOLS.md §3.1, and the checked-in generated code
is exactly what grpcio-tools makes from it (so nobody edits it by hand; fix with ``make proto``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor

from external_metrics.keda import externalscaler_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent
PROTO = "external_metrics/keda/externalscaler.proto"
GENERATED = ("externalscaler_pb2.py", "externalscaler_pb2.pyi", "externalscaler_pb2_grpc.py")


def test_generated_code_matches_the_proto(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT}", f"--python_out={tmp_path}",
         f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}", str(ROOT / PROTO)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    drifted = [
        name
        for name in GENERATED
        if (tmp_path / "external_metrics/keda" / name).read_bytes()
        != (ROOT / "external_metrics/keda" / name).read_bytes()
    ]
    assert drifted == [], f"{drifted} differ from what {PROTO} generates: run `make proto`"


T = FieldDescriptor


@pytest.mark.parametrize(
    ("message", "fields"),
    [
        ("ScaledObjectRef", [("name", 1, T.TYPE_STRING), ("namespace", 2, T.TYPE_STRING),
                             ("scalerMetadata", 3, T.TYPE_MESSAGE)]),
        ("IsActiveResponse", [("result", 1, T.TYPE_BOOL)]),
        ("GetMetricSpecResponse", [("metricSpecs", 1, T.TYPE_MESSAGE)]),
        ("MetricSpec", [("metricName", 1, T.TYPE_STRING), ("targetSize", 2, T.TYPE_INT64),
                        ("targetSizeFloat", 3, T.TYPE_DOUBLE)]),
        ("GetMetricsRequest", [("scaledObjectRef", 1, T.TYPE_MESSAGE),
                               ("metricName", 2, T.TYPE_STRING)]),
        ("GetMetricsResponse", [("metricValues", 1, T.TYPE_MESSAGE)]),
        ("MetricValue", [("metricName", 1, T.TYPE_STRING), ("metricValue", 2, T.TYPE_INT64),
                         ("metricValueFloat", 3, T.TYPE_DOUBLE)]),
    ],
)  # fmt: skip
def test_messages_have_keda_field_numbers(message, fields):
    descriptor = pb.DESCRIPTOR.message_types_by_name[message]
    assert descriptor.full_name == f"externalscaler.{message}"
    assert [(f.name, f.number, f.type) for f in descriptor.fields] == fields


def test_scaler_metadata_is_a_string_map():
    entry = pb.ScaledObjectRef.DESCRIPTOR.fields_by_name["scalerMetadata"].message_type
    assert entry is not None and entry.GetOptions().map_entry
    assert [(f.name, f.type) for f in entry.fields] == [
        ("key", T.TYPE_STRING),
        ("value", T.TYPE_STRING),
    ]


def test_service_is_externalscaler_external_scaler():
    service = pb.DESCRIPTOR.services_by_name["ExternalScaler"]
    assert service.full_name == "externalscaler.ExternalScaler"
    methods = {
        m.name: (m.input_type.name, m.output_type.name, m.server_streaming) for m in service.methods
    }
    assert methods == {
        "IsActive": ("ScaledObjectRef", "IsActiveResponse", False),
        "StreamIsActive": ("ScaledObjectRef", "IsActiveResponse", True),
        "GetMetricSpec": ("ScaledObjectRef", "GetMetricSpecResponse", False),
        "GetMetrics": ("GetMetricsRequest", "GetMetricsResponse", False),
    }

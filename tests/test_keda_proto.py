"""The KEDA wire contract: the .proto matches PROTOCOLS.md §3.1, and the checked-in generated code
describes exactly what the .proto declares (so nobody edits it by hand; fix with ``make proto``).

The drift check compares what matters on the wire — the file's messages, fields, maps and
services as a ``FileDescriptorProto`` — not the generated text: a new grpcio-tools release
changes the version banner (``GRPC_GENERATED_VERSION``) without changing the contract, and a
byte-for-byte comparison failed every fresh install the morning such a release came out.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FieldDescriptor
from packaging.requirements import Requirement
from packaging.version import Version

from external_metrics.keda import externalscaler_pb2 as pb
from external_metrics.keda import externalscaler_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parent.parent
PROTO = "external_metrics/keda/externalscaler.proto"
KEDA_DIR = ROOT / "external_metrics/keda"


def _declared_file(tmp_path: Path) -> descriptor_pb2.FileDescriptorProto:
    """What protoc (the locked grpcio-tools) makes of the .proto, as a descriptor."""
    out = tmp_path / "externalscaler.desc"
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT}", f"--descriptor_set_out={out}",
         str(ROOT / PROTO)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    assert [f.name for f in files] == [PROTO]
    _drop_json_names(files[0].message_type)
    return files[0]


def _drop_json_names(messages) -> None:
    """protoc fills in ``json_name`` (derived from the field name); generated code leaves it out."""
    for message in messages:
        for field in message.field:
            field.ClearField("json_name")
        _drop_json_names(message.nested_type)


def _checked_in_file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    pb.DESCRIPTOR.CopyToProto(proto)
    return proto


def test_checked_in_messages_and_services_match_the_proto(tmp_path):
    declared, checked_in = _declared_file(tmp_path), _checked_in_file()
    hint = f"externalscaler_pb2.py differs from what {PROTO} declares: run `make proto`"
    names = [m.name for m in declared.message_type]
    assert [m.name for m in checked_in.message_type] == names, hint
    for want, have in zip(declared.message_type, checked_in.message_type, strict=True):
        assert have == want, f"message {want.name}: {hint}"
    assert list(checked_in.service) == list(declared.service), hint
    assert checked_in == declared, hint  # package, syntax, options: everything else too


def test_checked_in_grpc_module_serves_every_declared_method(tmp_path):
    (service,) = _declared_file(tmp_path).service
    hint = f"externalscaler_pb2_grpc.py is behind {PROTO}: run `make proto`"
    servicer = pb_grpc.ExternalScalerServicer
    assert all(callable(getattr(servicer, m.name, None)) for m in service.method), hint
    with grpc.insecure_channel("127.0.0.1:9") as channel:  # never connects: no call is made
        stub = pb_grpc.ExternalScalerStub(channel)
        assert all(hasattr(stub, m.name) for m in service.method), hint
    stub_text = (KEDA_DIR / "externalscaler_pb2_grpc.py").read_text()
    for m in service.method:
        assert f"'/externalscaler.ExternalScaler/{m.name}'" in stub_text, hint


def test_checked_in_stubs_declare_every_message(tmp_path):
    pyi = (KEDA_DIR / "externalscaler_pb2.pyi").read_text()
    for message in _declared_file(tmp_path).message_type:
        assert re.search(rf"^class {message.name}\(_message\.Message\)", pyi, re.M), (
            f"externalscaler_pb2.pyi lacks {message.name}: run `make proto`"
        )


def _lower_bound(name: str) -> Version:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for text in project["dependencies"]:
        req = Requirement(text)
        if req.name == name:
            (spec,) = [s for s in req.specifier if s.operator == ">="]
            return Version(spec.version)
    raise AssertionError(f"pyproject.toml does not depend on {name}")


def test_pyproject_admits_only_runtimes_the_generated_code_accepts():
    """Who installs the package into their own environment gets a grpcio and a protobuf that the
    checked-in code imports with (it raises at import time below its generator's version)."""
    grpc_text = (KEDA_DIR / "externalscaler_pb2_grpc.py").read_text()
    (generated_grpc,) = re.findall(r"^GRPC_GENERATED_VERSION = '([^']+)'", grpc_text, re.M)
    assert _lower_bound("grpcio") >= Version(generated_grpc)
    pb_text = (KEDA_DIR / "externalscaler_pb2.py").read_text()
    (generated_pb,) = re.findall(r"^# Protobuf Python Version: (\S+)", pb_text, re.M)
    assert _lower_bound("protobuf") >= Version(generated_pb)


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

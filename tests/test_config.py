"""The service config: good files load, every bad one names the file and the field path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]

from autoscaler.config import (
    KNOWN_ENGINES,
    ServiceConfig,
    WorkloadConfig,
    describe,
    load_config,
    parse_config,
    prom_duration_seconds,
)
from autoscaler.core.slo import SloSpec
from autoscaler.errors import InputError

EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "examples" / "llm-autoscaler.yaml"
DIGEST = "sha256:" + "ab" * 32


def good() -> dict[str, Any]:
    return {
        "service": {"prometheus_url": "http://prom:9090", "tick_s": 15},
        "workloads": [
            {
                "namespace": "inference",
                "name": "llama",
                "engine": "vllm",
                "selector": {"app": "llama"},
                "image": f"registry.example.com/models/llama@{DIGEST}",
                "prefetch": {"enabled": True},
            },
            {
                "namespace": "inference",
                "name": "bloom",
                "engine": "tgi",
                "selector": {"app.kubernetes.io/name": "bloom"},
                "slo": {"ttft_s": 2.0, "tpot_s": 0.2},
                "min_replicas": 0,
                "max_replicas": 3,
            },
        ],
    }


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def with_change(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = good()
    target: Any = data
    for part in path[:-1]:
        target = target[part]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


_DELETE = object()

BAD_CASES = [
    # (id, path to change, new value, field path in the message, words in the message)
    ("unknown-field", ("workloads", 0, "min_replica"), 2, "workloads[0].min_replica", "unknown"),
    ("unknown-global", ("service", "tick"), 5, "service.tick", "unknown"),
    ("unknown-slo", ("workloads", 1, "slo", "ttft"), 1, "workloads[1].slo.ttft", "unknown"),
    ("duplicate", ("workloads", 1, "name"), "llama", "workloads[1].name", "duplicate"),
    ("min-gt-max", ("workloads", 1, "min_replicas"), 5, "workloads[1].min_replicas", "greater"),
    ("max-zero", ("workloads", 1, "max_replicas"), 0, "workloads[1].max_replicas", "1"),
    ("neg-tpot", ("workloads", 1, "slo", "tpot_s"), -0.1, "workloads[1].slo.tpot_s", "-0.1"),
    ("zero-ttft", ("workloads", 1, "slo", "ttft_s"), 0, "workloads[1].slo.ttft_s", "greater"),
    ("nan-ttft", ("workloads", 1, "slo", "ttft_s"), float("nan"), "slo.ttft_s", "nan"),
    ("inf-tpot", ("workloads", 1, "slo", "tpot_s"), float("inf"), "slo.tpot_s", "finite"),
    ("target-1", ("workloads", 0, "slo"), {"attainment_target": 1.0}, "attainment_target", "1"),
    ("bad-engine", ("workloads", 0, "engine"), "vlm", "workloads[0].engine", "vllm"),
    ("bad-image", ("workloads", 0, "image"), "Registry/UPPER:tag", "workloads[0].image", "OCI"),
    ("image-space", ("workloads", 0, "image"), "a b", "workloads[0].image", "OCI"),
    ("bad-digest", ("workloads", 0, "image"), "reg.io/m@sha256:xyz", "workloads[0].image", "OCI"),
    ("str-replicas", ("workloads", 1, "max_replicas"), "many", "max_replicas", "many"),
    ("float-replicas", ("workloads", 1, "max_replicas"), 2.5, "max_replicas", "2.5"),
    ("list-slo", ("workloads", 1, "slo"), [1, 2], "workloads[1].slo", "dictionary"),
    ("bool-shadow", ("workloads", 1, "shadow"), "maybe", "workloads[1].shadow", "maybe"),
    ("no-engine", ("workloads", 0, "engine"), _DELETE, "workloads[0].engine", "missing"),
    ("no-selector", ("workloads", 0, "selector"), {}, "workloads[0].selector", "pod selector"),
    ("bad-label", ("workloads", 0, "selector"), {"a b": "x"}, "workloads[0].selector", "label"),
    ("bad-ns", ("workloads", 0, "namespace"), "Inference", "workloads[0].namespace", "DNS"),
    ("bad-model", ("workloads", 0, "profile"), {"model": "gpt4"}, "profile.model", "llama2-70b"),
    ("bad-tp", ("workloads", 0, "profile"), {"tp": 3}, "workloads[0].profile.tp", "3"),
    ("seed-zero", ("workloads", 0, "capacity_seed"), 0, "workloads[0].capacity_seed", "greater"),
    ("size-neg", ("workloads", 0, "image_size_gb"), -5, "workloads[0].image_size_gb", "-5"),
    ("prefetch-no-image", ("workloads", 0, "image"), _DELETE, "prefetch.enabled", "image"),
    (
        "prefetch-conc",
        ("workloads", 0, "prefetch"),
        {"max_concurrent_per_pool": 0},
        "max_conc",
        "1",
    ),
    ("bad-url", ("service", "prometheus_url"), "prom:9090", "service.prometheus_url", "URL"),
    ("bad-window", ("service", "rate_window"), "1 minute", "service.rate_window", "PromQL"),
    ("neg-tick", ("service", "tick_s"), -15, "service.tick_s", "greater"),
    ("port-clash", ("service", "ports"), {"grpc": 9090}, "service.ports.grpc", "9090"),
    ("port-range", ("service", "ports"), {"https": 70000}, "service.ports.https", "65535"),
    ("tls-half", ("service", "tls_cert_file"), "/tls.crt", "service.tls_key_file", "together"),
    ("grpc-workers", ("service", "grpc_workers"), 0, "service.grpc_workers", "1"),
    ("bad-kind", ("workloads", 0, "kind"), "DaemonSet", "workloads[0].kind", "StatefulSet"),
    ("bad-source", ("service", "replica_source"), "ksm", "service.replica_source", "kube-state"),
    ("fleet-frac", ("workloads", 0, "prefetch"), {"fleet_fraction": 2}, "fleet_fraction", "1"),
    ("no-workloads", ("workloads",), [], "workloads", "at least one"),
    ("no-workloads-key", ("workloads",), _DELETE, "workloads", "missing"),
]


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [case[1:] for case in BAD_CASES],
    ids=[case[0] for case in BAD_CASES],
)
def test_bad_config_names_file_and_field(tmp_path, path, value, field, words):
    config_file = write(tmp_path, with_change(path, value))
    with pytest.raises(InputError) as info:
        load_config(config_file)
    message = str(info.value)
    assert str(config_file) in message
    assert field in message
    assert words in message
    assert "Traceback" not in message and "pydantic" not in message.lower()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("service: {tick_s: 15\nworkloads: []\n", ":2:"),  # unclosed flow mapping
        ("workloads:\n  - name: a\n   namespace: b\n", ":3:"),  # bad indentation
        ("a: 'unterminated\n", "malformed YAML"),
    ],
    ids=["unclosed-flow", "indentation", "unterminated-string"],
)
def test_malformed_yaml_gives_line_and_column(tmp_path, text, expected):
    config_file = write(tmp_path, text)
    with pytest.raises(InputError, match="malformed YAML") as info:
        load_config(config_file)
    assert f"{config_file}" in str(info.value)
    assert expected in str(info.value)


@pytest.mark.parametrize("text", ["", "   \n# only a comment\n"], ids=["empty", "comment-only"])
def test_empty_file(tmp_path, text):
    with pytest.raises(InputError, match="empty"):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_mapping(tmp_path, text):
    with pytest.raises(InputError, match="mapping"):
        load_config(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")


def test_several_problems_are_all_listed(tmp_path):
    data = good()
    data["workloads"][0]["engine"] = "nope"
    data["workloads"][1]["slo"]["tpot_s"] = -1
    with pytest.raises(InputError) as info:
        load_config(write(tmp_path, data))
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert any("workloads[0].engine" in line for line in lines)
    assert any("workloads[1].slo.tpot_s" in line for line in lines)


def test_defaults(tmp_path):
    config = load_config(write(tmp_path, good()))
    s = config.service
    assert (s.tick_s, s.rate_window, s.rate_window_s) == (15.0, "1m", 60.0)
    assert s.effective_staleness_s == 2 * 15 + 15
    assert s.pending_timeout_s == 600 and s.shadow is False
    assert (s.ports.https, s.ports.metrics, s.ports.grpc) == (6443, 9090, 9443)
    assert s.tls_cert_file is None and s.tls_key_file is None
    bloom = config.workload("inference", "bloom")
    assert (bloom.profile.model, bloom.profile.gpu, bloom.profile.tp) == ("llama2-70b", "h100", 4)
    assert bloom.slo.attainment_target == 0.99
    assert bloom.capacity_seed is None and bloom.image is None
    assert bloom.prefetch.enabled is False


def test_staleness_override_and_tick_dependence(tmp_path):
    data = good()
    data["service"].update(tick_s=10, scrape_interval_s=5)
    assert load_config(write(tmp_path, data)).service.effective_staleness_s == 25
    data["service"]["staleness_s"] = 90
    assert load_config(write(tmp_path, data)).service.effective_staleness_s == 90


def test_slo_converts_to_spec(tmp_path):
    config = load_config(write(tmp_path, good()))
    spec = config.workload("inference", "bloom").slo.to_spec()
    assert spec == SloSpec(ttft_s=2.0, ttft_per_1k_s=0.2, tpot_s=0.2, attainment_target=0.99)
    assert config.workloads[0].slo.to_spec() == SloSpec()


def test_lookup(tmp_path):
    config = load_config(write(tmp_path, good()))
    assert config.workload("inference", "llama").engine == "vllm"
    with pytest.raises(KeyError, match="other/llama"):
        config.workload("other", "llama")


def test_same_name_in_other_namespace_is_fine(tmp_path):
    data = good()
    data["workloads"][1]["name"] = "llama"
    data["workloads"][1]["namespace"] = "staging"
    config = load_config(write(tmp_path, data))
    assert config.workload("staging", "llama").engine == "tgi"


def test_shadow_per_workload_overrides_global(tmp_path):
    data = good()
    data["service"]["shadow"] = True
    data["workloads"][1]["shadow"] = False
    config = load_config(write(tmp_path, data))
    assert config.shadow(config.workloads[0]) is True
    assert config.shadow(config.workloads[1]) is False


def test_engine_list_is_a_parameter(tmp_path):
    config_file = write(tmp_path, good())
    with pytest.raises(InputError, match=r"workloads\[1\]\.engine: unknown engine 'tgi'"):
        load_config(config_file, engines=("vllm",))
    assert load_config(config_file, engines=("tgi", "vllm")).workloads[1].engine == "tgi"
    assert set(KNOWN_ENGINES) >= {"vllm", "tgi"}


@pytest.mark.parametrize(
    ("image", "warning"),
    [
        (f"registry.example.com/models/llama@{DIGEST}", None),
        (f"registry.example.com:5000/models/llama:v1@{DIGEST}", None),
        (f"localhost:5000/llama@{DIGEST}", None),
        ("quay.io/org/llama-2:70b-chat", "tag only"),
        ("llama", "no tag or digest"),
        ("ghcr.io/a/b/c__d-e.f:1.0", "tag only"),
    ],
)
def test_image_reference_and_digest_warning(tmp_path, image, warning):
    data = good()
    data["workloads"][0]["image"] = image
    config = load_config(write(tmp_path, data))
    warnings = config.warnings()
    if warning is None:
        assert warnings == []
    else:
        assert len(warnings) == 1
        assert warnings[0].startswith("workloads[0].image: ")
        assert warning in warnings[0]
        assert warnings[0] in describe(config)


def test_round_trip(tmp_path):
    config = load_config(write(tmp_path, good()))
    dumped = config.model_dump(mode="json")
    again = load_config(write(tmp_path, dumped))
    assert again == config
    assert parse_config(copy.deepcopy(dumped)) == config


def test_models_are_frozen(tmp_path):
    config = load_config(write(tmp_path, good()))
    with pytest.raises(ValueError):
        config.workloads[0].max_replicas = 100  # type: ignore[misc,unused-ignore]
    assert isinstance(config.workloads[0], WorkloadConfig)


def test_example_file_loads():
    config = load_config(EXAMPLE)
    assert isinstance(config, ServiceConfig)
    assert config.warnings() == []
    assert len(config.workloads) >= 2
    assert {w.engine for w in config.workloads} <= set(KNOWN_ENGINES)
    summary = describe(config)
    for w in config.workloads:
        assert f"{w.namespace}/{w.name}" in summary


def test_describe_mentions_the_essentials(tmp_path):
    summary = describe(load_config(write(tmp_path, good())))
    assert "http://prom:9090" in summary
    assert "2 workload(s)" in summary
    assert "inference/llama: vllm" in summary
    assert "stale after 45s" in summary


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("1m", 60), ("1h30m", 5400), ("500ms", 0.5)]
)
def test_prom_duration(text, seconds):
    assert prom_duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "m", "1.5m", "-1m"])
def test_prom_duration_rejects(text):
    with pytest.raises(ValueError):
        prom_duration_seconds(text)

"""``roles:`` in the config: two scale targets per disaggregated workload, else clear errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.config import ServiceConfig, describe, load_config
from autoscaler.errors import InputError
from autoscaler.live.loop import workload_context, workload_info
from autoscaler.perf.capacity import work_weights
from autoscaler.policies.roles import role_seed_capacity

ROLED: dict[str, Any] = {
    "namespace": "llm",
    "name": "llama-pd",
    "engine": "vllm",
    "slo": {"tpot_s": 0.05},
    "roles": {
        "prefill": {
            "name": "llama-prefill",
            "kind": "LeaderWorkerSet",
            "selector": {"llm-d.ai/role": "prefill"},
            "min_replicas": 2,
            "max_replicas": 12,
        },
        "decode": {"name": "llama-decode", "selector": {"llm-d.ai/role": "decode"}},
    },
}
PLAIN: dict[str, Any] = {
    "namespace": "llm",
    "name": "chat",
    "engine": "vllm",
    "selector": {"a": "b"},
}  # noqa: E501


def write(tmp_path: Path, *workloads: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"workloads": list(workloads)}))
    return path


def test_a_workload_with_roles_is_one_target_per_role(tmp_path):
    config = load_config(write(tmp_path, ROLED, PLAIN))
    prefill, decode, chat = config.targets
    assert (prefill.name, prefill.kind, prefill.role, prefill.group) == (
        "llama-prefill", "LeaderWorkerSet", "prefill", "llama-pd",
    )  # fmt: skip
    assert (prefill.min_replicas, prefill.max_replicas) == (2, 12)
    assert prefill.selector == {"llm-d.ai/role": "prefill"}
    assert (decode.name, decode.kind, decode.role, decode.max_replicas) == (
        "llama-decode", "Deployment", "decode", 10,
    )  # fmt: skip
    assert decode.slo.tpot_s == 0.05  # shared settings come from the workload
    assert chat is config.workloads[1]  # an aggregated workload is its own target, unchanged
    assert chat.role is None
    assert config.workload("llm", "llama-decode") is not None
    text = describe(config)
    assert "llm/llama-prefill" in text and "prefill of llama-pd, LeaderWorkerSet" in text


def test_role_targets_are_labelled_with_the_workload_and_role_and_get_role_contexts(tmp_path):
    config = load_config(write(tmp_path, ROLED, PLAIN))
    prefill, decode, chat = config.targets
    assert workload_info(config, prefill).labels == {
        "namespace": "llm", "workload": "llama-pd", "role": "prefill",
    }  # fmt: skip
    assert workload_info(config, chat).labels == {"namespace": "llm", "workload": "chat"}
    p, d = workload_context(config, prefill), workload_context(config, decode)
    assert p.decode_weight == 0.0 and p.prefill_weight > 0.0
    assert d.prefill_weight == 0.0 and d.decode_weight > 0.0
    assert (p.min_replicas, p.max_replicas) == (2, 12)
    assert p.profile is not None
    weights = work_weights(p.profile, p.slo)
    assert p.replica_token_capacity == pytest.approx(
        role_seed_capacity("prefill", p.profile, p.slo, weights)
    )


def changed(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(ROLED)
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


@pytest.mark.parametrize(
    ("workload", "field", "words"),
    [
        (changed(("roles", "decode"), None), "workloads[0].roles.decode", "missing"),
        (changed(("roles", "prefill", "selector"), {}), "roles.prefill.selector", "at least 1"),
        (changed(("roles", "decode", "name"), "llama-prefill"), "roles.decode.name", "own"),
        (
            changed(("roles", "decode", "selector"), {"llm-d.ai/role": "prefill"}),
            "roles.decode.selector",
            "told apart",
        ),
        (changed(("roles", "decode", "kind"), "Job"), "roles.decode.kind", "LeaderWorkerSet"),
        (changed(("roles", "decode", "min_replicas"), 11), "roles.decode.min_replicas", "greater"),
        (changed(("roles", "prefill", "name"), "Bad_Name"), "roles.prefill.name", "DNS-1123"),
        (changed(("roles", "encode"), {"name": "x", "selector": {"a": "b"}}), "encode", "unknown"),
        (changed(("selector",), {"a": "b"}), "workloads[0].selector", "per role"),
        (changed(("max_replicas",), 4), "workloads[0].max_replicas", "per role"),
        (changed(("capacity_seed",), 4.0), "workloads[0].capacity_seed", "not supported"),
        (changed(("gateway",), {"pool": "p"}), "workloads[0].gateway", "not supported"),
        (changed(("role",), "prefill"), "workloads[0].role", "group"),
    ],
)
def test_bad_roles_are_one_clear_line_naming_the_field(tmp_path, workload, field, words):
    with pytest.raises(InputError) as info:
        load_config(write(tmp_path, workload))
    message = str(info.value)
    assert "Traceback" not in message
    assert field in message and words in message


def test_a_role_target_may_not_reuse_another_workloads_name(tmp_path):
    clash = {**PLAIN, "name": "llama-decode"}
    with pytest.raises(InputError) as info:
        load_config(write(tmp_path, ROLED, clash))
    message = str(info.value)
    assert "workloads[1].name: duplicate workload llm/llama-decode" in message
    assert "workloads[0].roles.decode.name" in message


def test_without_roles_the_selector_is_still_required(tmp_path):
    with pytest.raises(InputError) as info:
        load_config(write(tmp_path, {k: v for k, v in PLAIN.items() if k != "selector"}))
    assert "workloads[0].selector: give the workload's pod selector" in str(info.value)


def test_targets_of_an_aggregated_config_are_its_workloads():
    config = ServiceConfig.model_validate({"workloads": [PLAIN]})
    assert config.targets == config.workloads
